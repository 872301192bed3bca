"""A known ALERTS history in a real Prometheus: OpenMetrics text of ``ALERTS`` samples,
backfilled with promtool (tests/replay, bench/replay.py).

Backfilled samples carry no staleness markers (a rule evaluation writes one when an
alert resolves), so Prometheus runs with a 1 s lookback: a range query's point sees the
sample at that instant only, as it would see a resolved alert's stale marker.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime

from tests.support import services

PROMETHEUS_ARGS = ("--storage.tsdb.retention.time=100y", "--query.lookback-delta=1s")

Series = tuple[Mapping[str, str], Iterable[datetime]]


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def openmetrics(series: Iterable[Series]) -> str:
    """``ALERTS{...,alertstate="firing"} 1 <time>`` for every sample time of every
    series (one series' samples together, in time order), then ``# EOF``."""
    lines = ["# TYPE ALERTS gauge"]
    for labels, times in series:
        inner = ",".join(
            f'{k}="{_label_value(v)}"'
            for k, v in sorted({**labels, "alertstate": "firing"}.items())
        )
        lines += [f"ALERTS{{{inner}}} 1 {int(at.timestamp())}" for at in sorted(set(times))]
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def prometheus_with(series: Iterable[Series]) -> Iterator[services.Prometheus]:
    """A real Prometheus whose TSDB holds exactly ``series``."""
    with services.prometheus_server(
        "global: {}\n", history=openmetrics(series), args=PROMETHEUS_ARGS
    ) as prom:
        yield prom
