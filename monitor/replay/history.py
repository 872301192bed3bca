"""The alerts' past as firing episodes: from Prometheus' ``ALERTS`` series or one
captured Alertmanager payload.

An :class:`Episode` is one alert (one label set) firing from ``starts_at`` to
``ends_at`` (None: still firing at the end of the window). From Prometheus, the
``ALERTS{alertstate="firing"}`` series are read with range queries, in chunks of at
most :data:`CHUNK_POINTS` points and one day; a series' samples closer than
:data:`GAP_STEPS` steps are one episode (a missed evaluation), farther apart two.
``starts_at`` is the first sample: the rule's ``for:`` has already passed then.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client import exceptions as prom_exceptions
from urllib3.util.retry import Retry

from monitor.alerts import payload
from monitor.errors import MonitorError

QUERY = 'ALERTS{alertstate="firing"}'
DROPPED_LABELS = frozenset({"__name__", "alertstate"})
CHUNK_POINTS = 10_000  # under Prometheus' 11,000 points a range query may return
CHUNK_SPAN = timedelta(days=1)
GAP_STEPS = 2  # samples at most this many steps apart are one episode
MAX_SINCE = timedelta(days=31)
MAX_SERIES = 50_000
MIN_STEP = timedelta(seconds=1)
MAX_STEP = timedelta(hours=1)


class ReplayError(MonitorError):
    """Replay cannot run: bad arguments, an unreachable Prometheus, too much history."""


@dataclass(frozen=True)
class Episode:
    """One alert firing once: its labels (without ``alertstate`` and ``__name__``)."""

    labels: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime | None
    fingerprint: str
    annotations: Mapping[str, str] | None = None

    def ended_by(self, at: datetime) -> bool:
        return self.ends_at is not None and self.ends_at <= at


def fingerprint(labels: Mapping[str, str]) -> str:
    """A stable identity of a label set (16 hex digits)."""
    text = "\xff".join(f"{k}\xfe{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def episodes_of(
    labels: Mapping[str, str], times: Iterable[datetime], step: timedelta, until: datetime
) -> list[Episode]:
    """The episodes of one series sampled at ``times`` every ``step`` up to ``until``: a
    gap of more than ``GAP_STEPS`` steps starts a new episode; an episode whose last sample
    is at ``until`` (or later) is still firing (``ends_at`` None), else it ended one step
    after its last sample."""
    found: list[Episode] = []
    fp = fingerprint(labels)
    first: datetime | None = None
    last: datetime | None = None

    def close() -> None:
        if first is None or last is None:
            return
        ends = None if last + step > until else last + step
        found.append(Episode(dict(labels), first, ends, fp))

    for at in sorted(times):
        if last is not None and at - last > GAP_STEPS * step:
            close()
            first = None
        if first is None:
            first = at
        last = at
    close()
    return found


def chunks(since: datetime, until: datetime, step: timedelta) -> list[tuple[datetime, datetime]]:
    """``[start, end]`` ranges covering ``since..until`` at ``step``, none sharing a point,
    each at most ``CHUNK_POINTS`` points and one day."""
    points = max(1, min(CHUNK_POINTS, int(CHUNK_SPAN / step)))
    found = []
    start = since
    while start <= until:
        end = min(start + (points - 1) * step, until)
        found.append((start, end))
        start = end + step
    return found


def align(at: datetime, step: timedelta) -> datetime:
    """``at`` rounded down to a multiple of ``step`` since the epoch (the times Prometheus'
    rule evaluations and the query's points share)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((at - epoch) // step) * step


def check_window(since: datetime, until: datetime, step: timedelta) -> None:
    if not MIN_STEP <= step <= MAX_STEP:
        raise ReplayError(f"--step {step.total_seconds():g}s: must be between 1s and 1h")
    if since >= until:
        raise ReplayError(f"--since {since.isoformat()} is not before --until {until.isoformat()}")
    if until - since > MAX_SINCE:
        raise ReplayError(
            f"--since: the window is {(until - since).total_seconds() / 86400:g} days; "
            f"replay reads at most {MAX_SINCE.days} days"
        )


def from_prometheus(
    url: str,
    since: datetime,
    until: datetime,
    step: timedelta,
    *,
    max_series: int = MAX_SERIES,
    timeout: float = 30.0,
) -> list[Episode]:
    """Every firing episode in ``since..until`` (aligned to ``step``), in start order."""
    check_window(since, until, step)
    since, until = align(since, step), align(until, step)
    try:
        prom = PrometheusConnect(url, retry=Retry(total=0), timeout=timeout)
    except (ValueError, TypeError) as exc:
        raise ReplayError(f"--prometheus {url!r}: {exc}") from None
    samples: dict[tuple[tuple[str, str], ...], list[datetime]] = {}
    try:
        for start, end in chunks(since, until, step):
            result = _query(prom, url, start, end, step)
            for series in result:
                metric = series.get("metric") or {}
                key = tuple(sorted((k, v) for k, v in metric.items() if k not in DROPPED_LABELS))
                times = samples.setdefault(key, [])
                times.extend(datetime.fromtimestamp(float(t), UTC) for t, _ in series["values"])
                if len(samples) > max_series:
                    raise ReplayError(
                        f"more than {max_series} ALERTS series in the window; "
                        "replay a shorter --since"
                    )
    finally:
        prom.close()
    found = [
        ep for key, times in samples.items() for ep in episodes_of(dict(key), times, step, until)
    ]
    return sorted(found, key=lambda e: (e.starts_at, sorted(e.labels.items())))


def _query(
    prom: PrometheusConnect, url: str, start: datetime, end: datetime, step: timedelta
) -> list[dict[str, Any]]:
    try:
        result = prom.custom_query_range(
            QUERY, start_time=start, end_time=end, step=f"{int(step.total_seconds())}s"
        )
    except prom_exceptions.PrometheusApiClientException as exc:
        raise ReplayError(f"Prometheus at {url} refused the query {QUERY!r}: {exc}") from None
    except requests.exceptions.RequestException as exc:
        raise ReplayError(
            f"cannot reach Prometheus at {url}: {type(exc).__name__}; check --prometheus "
            "or prometheus_url"
        ) from None
    if not isinstance(result, list):
        raise ReplayError(f"Prometheus at {url} answered {QUERY!r} with no matrix")
    return result


def from_payload(body: bytes, where: str) -> list[Episode]:
    """The episodes of one Alertmanager webhook payload (``startsAt`` to ``endsAt``)."""
    try:
        notification = payload.parse(body)
    except payload.PayloadError as exc:
        details = "; ".join(f"{d['field']}: {d['reason']}" for d in exc.details)
        raise ReplayError(
            f"{where}: {exc.message}" + (f" ({details})" if details else "")
        ) from None
    found = []
    for alert in notification.alerts:
        ends = alert.ends_at if alert.status == "resolved" else None
        found.append(
            Episode(
                dict(alert.labels),
                alert.starts_at,
                ends,
                alert.fingerprint,
                dict(alert.annotations),
            )
        )
    return sorted(found, key=lambda e: (e.starts_at, sorted(e.labels.items())))
