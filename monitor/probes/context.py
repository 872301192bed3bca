"""What every prober is given: the target, its module, a fresh recorder, a deadline.

A prober is ``async def probe(p: Probe) -> bool``; it writes its gauges into
``p.out`` and says whether the probe succeeded. The runner
(:mod:`monitor.probes.service`) adds ``probe_success`` and ``probe_duration_seconds``
and cancels the prober at the deadline.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from monitor.probes import config, guard, output, sessions, targets


@dataclass
class Probe:
    target: targets.Target
    module_name: str
    module: config.Module
    allow: config.Allow
    out: output.Recorder
    trace: output.Trace
    deadline: float  # event-loop time by which the probe must be done
    clients: sessions.Clients = field(repr=False, default_factory=sessions.Clients)
    own: guard.Own | None = None  # this service (never to be probed), if known

    def failed(self, reason: str) -> None:
        """Trace and log (INFO) why the probe failed; ``reason`` never holds a secret."""
        self.trace(reason)
        logging.getLogger(f"monitor.probes.{self.module.prober}").info(
            "probe failed: module %s, target %s:%s: %s",
            self.module_name,
            self.target.host,
            self.target.port,
            reason,
        )

    def remaining(self) -> float:
        return max(0.0, self.deadline - asyncio.get_running_loop().time())

    def check(self, target: targets.Target) -> None:
        """Raise ProbeError unless the module's allowlist admits ``target``."""
        targets.check(self.allow, self.module_name, target)


Prober = Callable[[Probe], Awaitable[bool]]
