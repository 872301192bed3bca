"""Shared pieces of the benchmarks: a load generator with latency percentiles."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        data = sorted(self.latencies)
        return data[min(len(data) - 1, int(q * len(data)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) if self.latencies else float("nan")


async def post_load(
    url: str,
    body_for: Callable[[int], bytes],
    *,
    total: int,
    concurrency: int,
    headers: dict[str, str] | None = None,
    seconds: float | None = None,
) -> tuple[LoadResult, list[int]]:
    """POST ``total`` bodies with ``concurrency`` workers; returns the indexes answered 200.
    With ``seconds``, no request starts after that long (``total`` is then a bound)."""
    latencies: list[float] = []
    ok: list[int] = []
    errors = 0
    counter = iter(range(total))
    hdrs = {"content-type": "application/json", **(headers or {})}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal errors
            for i in counter:
                if deadline is not None and time.perf_counter() >= deadline:
                    return
                body = body_for(i)
                start = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=hdrs) as resp:
                        await resp.read()
                        status = resp.status
                except aiohttp.ClientError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - start)
                if status == 200:
                    ok.append(i)
                else:
                    errors += 1

        started = time.perf_counter()
        deadline = None if seconds is None else started + seconds
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return LoadResult(len(latencies), errors, elapsed, latencies), ok


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks
