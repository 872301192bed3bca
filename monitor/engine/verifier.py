"""Verification: does a PromQL condition hold now?

Queries go through ``prometheus-api-client`` (blocking ``requests``), run in a worker
thread so the event loop never waits on Prometheus: the caller's pool
(:func:`monitor.threads.run`), so a diagnostic's query (``prometheus.query``) runs in the
diagnostics' own threads and a slow Prometheus holds none of the steps'.

**When an expression holds.** The instant query's result decides:

* an instant vector holds when it has at least one series, whatever the sample values,
  exactly as an alert rule fires;
* a scalar holds when its value is non-zero (and not NaN); a string when non-empty.

A policy's ``verify.promql`` describes the *problem*, like the alert's own expression:
the remediation has worked when it no longer holds (docs/policy.md: "recovered when it
returns no series"). Write it as a filter on the bad state, e.g.
``sum(rate(http_requests_total{code=~"5.."}[1m])) / sum(rate(http_requests_total[1m]))
> 0.05``, and avoid the ``bool`` modifier, which always returns series.

:meth:`Verifier.query` raises :class:`QueryError` when Prometheus cannot answer
(unreachable, HTTP 5xx), and a *permanent* one when it rejects the query itself (HTTP 400:
waiting cannot fix a typo). The engine's verification (:mod:`monitor.engine.verification`)
decides when to ask again.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client import exceptions as prom_exceptions
from urllib3.util.retry import Retry

from monitor import errors, threads

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class QueryError(errors.MonitorError):
    """A PromQL query failed; ``permanent`` when Prometheus rejected the query itself."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def truthy(result: Any) -> bool:
    """The rule in the module docstring, applied to ``custom_query``'s result."""
    if not result:
        return False
    if isinstance(result, list) and isinstance(result[0], dict):
        return True  # an instant vector with at least one series
    value = result[1] if isinstance(result, list) and len(result) == 2 else result
    try:
        number = float(value)
    except (TypeError, ValueError):
        return bool(value)  # a string
    return not math.isnan(number) and number != 0


def quote(value: str) -> str:
    """A PromQL string literal."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def alerts_expr(alertname: str, labels: Mapping[str, str] | None = None) -> str:
    """``ALERTS{alertname="...",alertstate="firing",...}`` for an alert and its labels."""
    matchers = {"alertname": alertname, **dict(labels or {}), "alertstate": "firing"}
    for name in matchers:
        if not _LABEL_NAME.fullmatch(name):
            raise QueryError(f"{name!r} is not a valid label name", permanent=True)
    inner = ",".join(f"{name}={quote(value)}" for name, value in matchers.items())
    return f"ALERTS{{{inner}}}"


class Verifier:
    """Checks PromQL conditions against one Prometheus at ``url``."""

    def __init__(
        self, url: str, *, timeout: float = 10.0, headers: Mapping[str, str] | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._prom = PrometheusConnect(
            self.url, headers=dict(headers or {}), retry=Retry(total=0), timeout=timeout
        )

    def close(self) -> None:
        self._prom.close()

    async def query(self, expr: str) -> Any:
        """The raw instant-query result; raises :class:`QueryError`."""
        return await self._ask(expr, lambda: self._prom.custom_query(expr))

    async def query_range(self, expr: str, start: datetime, end: datetime, step: float) -> Any:
        """The raw range-query result (a matrix); raises :class:`QueryError`."""
        return await self._ask(
            expr,
            lambda: self._prom.custom_query_range(
                expr, start_time=start, end_time=end, step=f"{step:g}"
            ),
        )

    async def _ask(self, expr: str, ask: Callable[[], Any]) -> Any:
        def blocking() -> Any:
            try:
                return ask()
            except prom_exceptions.PrometheusApiClientException as exc:
                text = str(exc)
                raise QueryError(
                    f"query {expr!r} failed: {text}",
                    permanent="HTTP Status Code 400" in text or "HTTP Status Code 422" in text,
                ) from exc
            except (requests.RequestException, ValueError) as exc:
                raise QueryError(
                    f"query {expr!r}: Prometheus at {self.url} did not answer: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc

        return await threads.run(blocking)

    async def holds(self, expr: str) -> bool:
        """Whether ``expr`` holds now (see the rule in the module docstring)."""
        return truthy(await self.query(expr))

    async def alert_firing(self, alertname: str, labels: Mapping[str, str] | None = None) -> bool:
        """Whether Prometheus has ``alertname`` (with these labels) firing now."""
        return await self.holds(alerts_expr(alertname, labels))
