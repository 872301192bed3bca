"""``prometheus.query``: any PromQL, as a small table (instant) or a series (range).

``promql`` is a template rendered with the alert's labels like ``verify.promql`` (each
``{{ ... }}`` escaped as the contents of a PromQL string literal). The query goes to
the Prometheus the service verifies against (``prometheus_url``).
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from pydantic import Field, model_validator

from monitor import durations, errors
from monitor.actions import registry
from monitor.actions.diagnose import common

MAX_RANGE = timedelta(days=1)
MAX_POINTS = 1000


class QueryParams(registry.StrictModel):
    promql: str = Field(min_length=1, max_length=4000, description="PromQL (a template)")
    limit: int = Field(10, ge=1, le=common.MAX_ROWS, description="rows of an instant query")
    range: durations.Duration | None = Field(
        None, description="a range query over this long up to now (a series), at most 1d"
    )
    step: durations.Duration = Field(
        durations.parse("1m"), description="the range query's resolution"
    )

    @model_validator(mode="after")
    def _bounds(self) -> QueryParams:
        if self.range is None:
            return self
        if not timedelta(0) < self.range <= MAX_RANGE:
            raise ValueError(
                f"range must be longer than 0s and at most {durations.format(MAX_RANGE)}"
            )
        if self.step <= timedelta(0):
            raise ValueError("step must be longer than 0s")
        if self.range / self.step > MAX_POINTS:
            raise ValueError(
                f"range/step would be {int(self.range / self.step)} points; at most {MAX_POINTS}"
            )
        return self


def _labels(metric: dict[str, Any]) -> str:
    if not metric:
        return ""
    name = metric.get("__name__", "")
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
    return f"{name}{{{inner}}}" if inner or not name else name


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) or math.isinf(number) else number


def _shown(value: float | None) -> str:
    return "NaN" if value is None else f"{value:.4g}"


class Query(common.Diagnostic[QueryParams]):
    """``prometheus.query``: see the module docstring."""

    name = "prometheus.query"
    Params = QueryParams

    async def gather(self, params: QueryParams, ctx: registry.ActionContext) -> common.Found:
        prometheus = ctx.services.prometheus
        if prometheus is None:
            raise errors.NotConfigured("no prometheus_url configured to run the query")
        try:
            if params.range is not None:
                end = ctx.now()
                found = await prometheus.query_range(
                    params.promql, end - params.range, end, params.step.total_seconds()
                )
                return self._series(params, found)
            found = await prometheus.query(params.promql)
        except errors.MonitorError as exc:
            raise errors.PermanentActionError(str(exc)) from exc
        return self._table(params, found)

    def _table(self, params: QueryParams, found: Any) -> common.Found:
        if not isinstance(found, list) or (found and not isinstance(found[0], dict)):
            # a scalar or a string: [time, "value"]
            value = found[1] if isinstance(found, list) and len(found) == 2 else found
            return common.table(["value"], [[str(value)]], f"{params.promql} = {value}")
        series = sorted(
            found,
            key=lambda s: -(_number((s.get("value") or [0, "nan"])[1]) or -math.inf),
        )
        names = sorted({k for s in series for k in s.get("metric", {}) if k != "__name__"})
        rows = [
            [
                *(str(s.get("metric", {}).get(n, "")) for n in names),
                _number((s.get("value") or [0, "nan"])[1]),
            ]
            for s in series[: params.limit]
        ]
        summary = f"{len(series)} series"
        if rows:
            top = series[0]
            value = _number((top.get("value") or [0, "nan"])[1])
            summary += f", highest {_labels(top.get('metric', {}))} = {_shown(value)}"
        return common.table([*names, "value"], rows, summary, truncated=len(series) > params.limit)

    def _series(self, params: QueryParams, found: Any) -> common.Found:
        series = [s for s in found or [] if isinstance(s, dict)]
        if not series:
            return common.Found(
                f"no data for {params.promql} over {durations.format(params.range or timedelta())}",
                {"kind": "series", "metric": params.promql, "points": []},
            )
        first = series[0]
        points = [
            [float(t), number]
            for t, v in first.get("values") or []
            if (number := _number(v)) is not None
        ][-MAX_POINTS:]
        values = [p[1] for p in points]
        metric = common.clip(
            common.redact(_labels(first.get("metric", {})) or params.promql), common.MAX_CELL
        )[0]
        summary = f"{metric}: {len(points)} points"
        if values:
            low, high = _shown(min(values)), _shown(max(values))
            summary += f", last {_shown(values[-1])} (min {low}, max {high})"
        if len(series) > 1:
            summary += f"; {len(series) - 1} more series not kept"
        return common.Found(
            summary, {"kind": "series", "metric": metric, "points": points}, len(series) > 1
        )


DIAGNOSTICS: tuple[type[registry.Action[Any]], ...] = (Query,)
