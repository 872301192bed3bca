"""The web console under ``/ui/`` (docs/console.md): server-rendered pages over the store
and the engine, pause/resume and approve/reject as CSRF-checked forms."""
