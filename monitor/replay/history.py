"""The alerts' past as firing episodes: from Prometheus' ``ALERTS`` series or one
captured Alertmanager payload.

An :class:`Episode` is one alert (one label set) firing from ``starts_at`` to
``ends_at`` (None: still firing at the end of the window). From Prometheus, the
``ALERTS{alertstate="firing"}`` series are read with range queries at the step, in
chunks of at most :data:`CHUNK_POINTS` points and one day. Prometheus is asked for the
edges only (``ALERTS unless ALERTS offset <step>``: where a series starts to fire, and
the reverse: where it stops), not every sample: a week of 1,000 alerts is a million
points, its edges a few thousand. Samples at most :data:`GAP_STEPS` steps apart are one
episode (a missed evaluation), farther apart two. ``starts_at`` is the first sample
(the rule's ``for:`` has already passed then); ``ends_at`` one step after the last.
"""

from __future__ import annotations

import concurrent.futures
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
    labels: Mapping[str, str],
    starts: Iterable[datetime],
    ends: Iterable[datetime],
    step: timedelta,
) -> list[Episode]:
    """The episodes of one series from its edges: ``starts`` (a point where it fires and
    did not one step before) and ``ends`` (a point where it no longer fires and did one
    step before). A run that resumes at most one step after it ended (at most one point
    missing: ``GAP_STEPS``) goes on; an end before any start (an episode that began before
    the window) is ignored; a start with no end is still firing (``ends_at`` None)."""
    runs: list[tuple[datetime, datetime | None]] = []
    began: datetime | None = None
    # An end and a start of one series never share a point.
    for at, is_start in sorted([(t, True) for t in starts] + [(t, False) for t in ends]):
        if is_start:
            if began is None:
                began = at
        elif began is not None:
            runs.append((began, at))
            began = None
    if began is not None:
        runs.append((began, None))
    fp = fingerprint(labels)
    found: list[Episode] = []
    for first, end in runs:
        last = found[-1] if found else None
        if (
            last is not None
            and last.ends_at is not None
            and first - last.ends_at <= step * (GAP_STEPS - 1)
        ):
            found[-1] = Episode(last.labels, last.starts_at, end, fp)
        else:
            found.append(Episode(dict(labels), first, end, fp))
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
    offset = f"{int(step.total_seconds())}s"
    queries = [
        (f"{QUERY} unless {QUERY} offset {offset}", True, since, until),  # edges up
        (f"({QUERY} offset {offset}) unless {QUERY}", False, since, until),  # edges down
    ]
    jobs = [(QUERY, True, since, since)]  # what already fires when the window opens
    jobs += [(q, up, start, end) for q, up, a, b in queries for start, end in chunks(a, b, step)]
    edges: dict[tuple[tuple[str, str], ...], tuple[list[datetime], list[datetime]]] = {}

    def run(job: tuple[str, bool, datetime, datetime]) -> tuple[bool, list[dict[str, Any]]]:
        return job[1], _query(prom, url, job[0], job[2], job[3], step)

    # Two queries in flight: Prometheus answers one while the other's JSON is decoded.
    try:
        with concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="replay") as pool:
            for up, result in pool.map(run, jobs):
                _check_matrix(url, result)
                for series in result:
                    metric = series.get("metric") or {}
                    key = tuple(
                        sorted((k, v) for k, v in metric.items() if k not in DROPPED_LABELS)
                    )
                    found_edges = edges.get(key)
                    if found_edges is None:
                        if len(edges) >= max_series:
                            raise ReplayError(
                                f"more than {max_series} ALERTS series in the window; "
                                "replay a shorter --since"
                            )
                        found_edges = edges[key] = ([], [])
                    found_edges[0 if up else 1].extend(
                        datetime.fromtimestamp(float(v[0]), UTC) for v in series["values"]
                    )
    finally:
        prom.close()
    found = [
        ep
        for key, (starts, ends) in edges.items()
        for ep in episodes_of(dict(key), starts, ends, step)
    ]
    return sorted(found, key=lambda e: (e.starts_at, sorted(e.labels.items())))


def _query(
    prom: PrometheusConnect, url: str, query: str, start: datetime, end: datetime, step: timedelta
) -> list[dict[str, Any]]:
    try:
        result = prom.custom_query_range(
            query, start_time=start, end_time=end, step=f"{int(step.total_seconds())}s"
        )
    except prom_exceptions.PrometheusApiClientException as exc:
        raise ReplayError(f"Prometheus at {url} refused the query {QUERY!r}: {exc}") from None
    except requests.exceptions.JSONDecodeError:
        raise ReplayError(f"{url} answered {query!r} with something else than JSON") from None
    except requests.exceptions.RequestException as exc:
        raise ReplayError(
            f"cannot reach Prometheus at {url}: {type(exc).__name__}; check --prometheus "
            "or prometheus_url"
        ) from None
    if not isinstance(result, list):
        raise ReplayError(f"Prometheus at {url} answered {query!r} with no matrix")
    return result


def _check_matrix(url: str, result: list[dict[str, Any]]) -> None:
    """A range query's result is a list of {"metric": {...}, "values": [[time, value]...]}."""
    for series in result:
        values = series.get("values") if isinstance(series, dict) else None
        metric = series.get("metric") if isinstance(series, dict) else None
        if not isinstance(values, list) or not isinstance(metric, dict):
            raise ReplayError(f"Prometheus at {url} answered with something else than a matrix")
        for point in values:
            if not (isinstance(point, list) and len(point) == 2):
                raise ReplayError(f"Prometheus at {url} answered with a malformed sample")
            try:
                float(point[0])
            except (TypeError, ValueError):
                raise ReplayError(
                    f"Prometheus at {url} answered with a malformed time {str(point[0])[:40]!r}"
                ) from None


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
