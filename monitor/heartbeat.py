"""Whether a worker thread is making progress; ``/readyz`` and ``/metrics`` ask.

A worker (the store's writer thread; the same way any other) owns a :class:`Heartbeat`.
Whoever hands it work calls :meth:`Heartbeat.waiting`; the worker calls
:meth:`Heartbeat.done` for what it has finished, failed or dropped. It is stalled when
its thread is not alive, or when work has been waiting longer than ``deadline`` seconds
with nothing finished meanwhile. A stalled worker makes the service not ready (503 on
``/readyz``, naming it) and shows as ``conea_monitor_worker_stalled{worker=...} 1``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector as _Collector

from monitor.metrics import PREFIX


class Heartbeat:
    """Progress of one worker thread; safe to use from any thread."""

    def __init__(
        self, name: str, deadline: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = name
        self.deadline = deadline
        self._clock = clock
        self._lock = threading.Lock()
        self._pending = 0
        self._since = clock()  # last progress, or when work arrived at an idle worker
        self._thread: threading.Thread | None = None

    def attach(self, thread: threading.Thread) -> None:
        """The thread doing the work: a thread that has ended is a stalled worker."""
        self._thread = thread

    def waiting(self, count: int = 1) -> None:
        with self._lock:
            if self._pending == 0:
                self._since = self._clock()
            self._pending += count

    def done(self, count: int = 1) -> None:
        with self._lock:
            self._pending = max(0, self._pending - count)
            self._since = self._clock()

    @property
    def pending(self) -> int:
        return self._pending

    def waited(self) -> float:
        """Seconds work has been waiting with nothing finished (0 when none waits)."""
        with self._lock:
            return self._clock() - self._since if self._pending else 0.0

    def problem(self) -> str | None:
        """Why the worker is stalled, or None while it makes progress."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return f"{self.name} is not running"
        waited = self.waited()
        if waited > self.deadline:
            return (
                f"{self.name} stalled: {self._pending} item(s) waiting, nothing done for "
                f"{waited:.1f} s (deadline {self.deadline:g} s)"
            )
        return None


class Collector(_Collector):
    """``conea_monitor_worker_stalled`` and ``conea_monitor_worker_pending``, per worker,
    computed at scrape time from the heartbeats ``source`` returns."""

    def __init__(self, source: Callable[[], Iterable[Heartbeat]]) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        stalled = GaugeMetricFamily(
            f"{PREFIX}_worker_stalled",
            "1 while a worker thread is not making progress (not running, or work waiting "
            "longer than its deadline); /readyz is 503 meanwhile.",
            labels=["worker"],
        )
        pending = GaugeMetricFamily(
            f"{PREFIX}_worker_pending",
            "Items handed to a worker thread and not yet done.",
            labels=["worker"],
        )
        for beat in self.source():
            stalled.add_metric([beat.name], 0.0 if beat.problem() is None else 1.0)
            pending.add_metric([beat.name], float(beat.pending))
        yield stalled
        yield pending
