.PHONY: demo

# The whole loop (alert -> remediation -> verification -> revert, and an escalation to a
# page) on 127.0.0.1 in under a minute, with a timeline. See docs/demo.md.
demo:
	.venv/bin/python -m demo.run
