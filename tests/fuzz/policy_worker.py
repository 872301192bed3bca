"""A process that loads policy files on request, so a load that hangs can be killed.

The parent sends a path; the worker answers ``("loaded", count)`` or ``("error", type
name, is a PolicyError, error lines)``.
"""

from __future__ import annotations

import contextlib
from multiprocessing.connection import Connection


def serve(conn: Connection) -> None:
    from monitor.actions import default_registry
    from monitor.errors import PolicyError
    from monitor.policy import loader

    registry = default_registry()
    with contextlib.suppress(EOFError, KeyboardInterrupt):
        while True:
            path = conn.recv()
            try:
                policies = loader.load([path], registry, strict_actions=True)
            except Exception as exc:
                errors = getattr(exc, "errors", None) or [str(exc)]
                conn.send(("error", type(exc).__name__, isinstance(exc, PolicyError), errors))
            else:
                conn.send(("loaded", len(policies.policies)))
