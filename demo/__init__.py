"""The demo of the whole loop (``make demo``) and the stack the end-to-end tests run."""
