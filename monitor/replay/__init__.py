"""Replay: what would these policies have done with the alerts of the past?

::

    from monitor import replay

    episodes = replay.from_prometheus(url, since, until, step)   # or replay.from_payload(...)
    outcome = replay.simulate(policies, episodes, since=since, until=until, scope=scope)
    report = replay.build(outcome, step=step, source="prometheus")   # replay.render(report)

Reads only: Prometheus (or a captured payload) and the policies. Nothing is written to
Kubernetes, PostgreSQL targets, notifiers or the store (the command line's ``--record``
writes one audit record through the store). See docs/replay.md.
"""

from __future__ import annotations

from monitor.replay.history import (
    Episode,
    ReplayError,
    check_window,
    episodes_of,
    from_payload,
    from_prometheus,
)
from monitor.replay.report import build, render
from monitor.replay.simulate import Outcome, simulate

__all__ = [
    "Episode",
    "Outcome",
    "ReplayError",
    "build",
    "check_window",
    "episodes_of",
    "from_payload",
    "from_prometheus",
    "render",
    "simulate",
]
