"""What each console page shows, gathered from the store and the engine (no HTTP here)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml
from fastapi.concurrency import run_in_threadpool

from monitor import durations
from monitor.runtime import Runtime
from monitor.store import breaker, control, queries
from monitor.store import evidence as evidence_store
from monitor.store.records import Evidence
from monitor.store.states import State

IN_FLIGHT = (State.RUNNING, State.DEFERRED)
OVERVIEW_ROWS = 20  # rows per overview table
FIRING_READ = 100  # the newest firing alerts looked at for the overview's policy matches


def mode(rt: Runtime) -> str:
    """live, rehearsal or approval, as the engine runs."""
    engine = rt.extras.get("engine")
    if engine is not None and engine.dry_run:
        return "rehearsal"
    return "approval" if rt.settings.automation.mode == "approval" else "live"


@dataclass
class Pause:
    paused: bool
    by: str | None = None
    at: datetime | None = None
    reason: str = ""
    by_config: bool = False  # automation.paused in the settings (no resume lifts it)


def _pause(rt: Runtime) -> Pause:
    found = control.get_control(rt.db, control.PAUSE_KEY)
    value = found["value"] if found and isinstance(found["value"], dict) else {}
    by_config = rt.settings.automation.paused
    if not found:
        return Pause(by_config, by_config=by_config)
    return Pause(
        bool(value.get("paused")) or by_config,
        found["updated_by"],
        found["updated_at"],
        str(value.get("reason") or ""),
        by_config,
    )


@dataclass
class Overview:
    mode: str
    pause: Pause
    breaker: Any
    max_actions: Any
    in_flight: list[dict[str, Any]]
    awaiting: list[dict[str, Any]]
    failures: list[dict[str, Any]]
    firing: list[dict[str, Any]] = field(default_factory=list)


def _overview(rt: Runtime, policies: Any) -> Overview:
    db = rt.db
    in_flight = queries.list_executions(
        db, queries.Filters(states=IN_FLIGHT, limit=OVERVIEW_ROWS), brief=True
    ).items
    awaiting = queries.list_executions(
        db, queries.Filters(status=State.AWAITING_APPROVAL, limit=OVERVIEW_ROWS), brief=True
    ).items
    failures = queries.list_executions(
        db, queries.Filters(status=State.FAILED, limit=OVERVIEW_ROWS), brief=True
    ).items
    firing = []
    for alert in queries.firing_now(db, limit=FIRING_READ):
        matched = [p.name for p in policies.match(alert["labels"])] if policies else []
        if matched:
            firing.append({**alert, "policies": matched})
    return Overview(
        mode(rt),
        _pause(rt),
        breaker.breaker_state(db),
        rt.settings.automation.max_actions,
        in_flight,
        awaiting,
        failures,
        firing[:OVERVIEW_ROWS],
    )


async def overview(rt: Runtime) -> Overview:
    engine = rt.extras.get("engine")
    return await run_in_threadpool(_overview, rt, engine.policies if engine else None)


def policy_view(policy: Any) -> dict[str, Any]:
    """A loaded policy as the pages show it: match, target, steps and its guardrails."""
    spec = policy.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    guardrails = {
        k: spec[k]
        for k in (
            "severity",
            "for_at_least",
            "cooldown",
            "budget",
            "dry_run",
            "approval",
            "active_time_intervals",
            "inactive_time_intervals",
        )
        if k in spec and spec[k] not in ([], None)
    }
    return {
        "name": policy.name,
        "description": spec.get("description", ""),
        "match": spec["match"],
        "target": spec["target"],
        "steps": [yaml.safe_dump(step, sort_keys=False).strip() for step in spec["steps"]],
        "guardrails": guardrails,
        "verify": spec.get("verify"),
        "revert": spec.get("revert"),
    }


def loaded(rt: Runtime) -> list[dict[str, Any]]:
    """The policies the engine runs, as the pages show them."""
    engine = rt.extras.get("engine")
    return [policy_view(p) for p in engine.policies] if engine else []


@dataclass
class Detail:
    row: dict[str, Any]
    audit: list[dict[str, Any]]
    coalesced: dict[str, Any]
    deliveries: list[dict[str, Any]]
    policy: dict[str, Any] | None
    verdicts: list[dict[str, Any]]
    verification: list[dict[str, Any]]
    escalations: list[dict[str, Any]]
    reverts: list[dict[str, Any]]
    approvals: list[dict[str, Any]]
    evidence: list[dict[str, Any]] = field(default_factory=list)


PHASES = {
    "before": "before the first step",
    "after_verification": "after a failed check",
    "after_failure": "after the step failed",
}
SPARK_WIDTH, SPARK_HEIGHT = 240, 40


def sparkline(points: list[Any]) -> str:
    """An SVG polyline's ``points`` for a series ([[unix seconds, value], ...]), scaled
    into SPARK_WIDTH x SPARK_HEIGHT; empty when there is nothing to draw."""
    pairs = []
    for point in points:
        try:
            t, v = float(point[0]), float(point[1])
        except (TypeError, ValueError, IndexError):
            continue
        if v == v and abs(v) != float("inf"):  # NaN and infinities are gaps
            pairs.append((t, v))
    if len(pairs) < 2:
        return ""
    t0, t1 = pairs[0][0], pairs[-1][0]
    low, high = min(v for _, v in pairs), max(v for _, v in pairs)
    span_t, span_v = (t1 - t0) or 1.0, (high - low) or 1.0
    xs = ((t - t0) / span_t * SPARK_WIDTH for t, _ in pairs)
    ys = (SPARK_HEIGHT - (v - low) / span_v * SPARK_HEIGHT for _, v in pairs)
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))


def evidence_view(step: int, item: Evidence) -> dict[str, Any]:
    """One diagnostic's result as the execution page shows it."""
    result = item.result or {}
    view: dict[str, Any] = {
        "step": step,
        "phase": PHASES.get(item.phase, item.phase),
        "name": item.name,
        "action": item.action,
        "outcome": item.outcome,
        "error": item.error,
        "summary": item.summary,
        "truncated": item.truncated,
        "at": item.started_at,
        "kind": result.get("kind"),
    }
    if view["kind"] == "table":
        view["columns"] = [str(c) for c in result.get("columns", [])]
        view["rows"] = [[str(c) for c in row] for row in result.get("rows", [])]
    elif view["kind"] == "lines":
        view["lines"] = [str(line) for line in result.get("lines", [])]
    elif view["kind"] == "series":
        points = result.get("points", [])
        view["metric"] = str(result.get("metric", ""))
        view["spark"] = sparkline(points)
        values = [p[1] for p in points if isinstance(p, list | tuple) and len(p) == 2]
        view["last"] = values[-1] if values else None
    return view


def _detail(rt: Runtime, execution_id: int, policies: Any) -> Detail | None:
    db = rt.db
    row = queries.get_execution(db, execution_id)
    if row is None:
        return None
    audit = queries.list_audit(db, queries.Filters(limit=1000), execution_id).items
    audit.reverse()  # oldest first: a timeline
    found = [p for p in policies if p.name == row["policy"]] if policies else []
    verdicts: list[dict[str, Any]] = []
    for event in audit:
        details = event.get("details")
        if isinstance(details, dict) and isinstance(details.get("verdicts"), list):
            verdicts = details["verdicts"]  # the last decision's
    return Detail(
        row=row,
        audit=audit,
        coalesced=queries.coalesced_into(db, execution_id, limit=50),
        deliveries=queries.deliveries_of(db, row["fingerprint"], row["starts_at"]),
        policy=policy_view(found[0]) if found else None,
        verdicts=verdicts,
        verification=[a for a in audit if a["kind"] == "verify"],
        escalations=[a for a in audit if a["kind"] == "escalate"],
        reverts=[a for a in audit if a["kind"] == "revert"],
        approvals=[a for a in audit if a["kind"] == "approval"],
        evidence=[
            evidence_view(n, item) for n, item in evidence_store.for_ladder(db, execution_id)
        ],
    )


async def detail(rt: Runtime, execution_id: int) -> Detail | None:
    engine = rt.extras.get("engine")
    return await run_in_threadpool(_detail, rt, execution_id, engine.policies if engine else None)


def _alerts(rt: Runtime, f: queries.Filters, policies: Any) -> tuple[list[Any], int | None]:
    page = queries.list_alerts(rt.db, f)
    led = queries.outcomes(rt.db, sorted({a["fingerprint"] for a in page.items}))
    out = []
    for alert in page.items:
        results = [
            r
            for r in led[alert["fingerprint"]]
            if r["what"] == "skip" or r["starts_at"] == alert["starts_at"]
        ]
        matched = [p.name for p in policies.match(alert["labels"])] if policies else []
        out.append({**alert, "led_to": results, "policies": matched})
    return out, page.next


async def alerts(rt: Runtime, f: queries.Filters) -> tuple[list[Any], int | None]:
    engine = rt.extras.get("engine")
    return await run_in_threadpool(_alerts, rt, f, engine.policies if engine else None)


def ago(value: datetime | None, now: datetime | None = None) -> str:
    """``3m ago`` (to the second under a minute, else the two largest units)."""
    if value is None:
        return ""
    delta = (now or datetime.now(UTC)) - value
    if delta.total_seconds() < 0:
        return "in " + durations.format(timedelta(seconds=int(-delta.total_seconds())))
    text = durations.format(timedelta(seconds=int(delta.total_seconds())))
    return "".join(re.findall(r"[0-9]+[a-z]+", text)[:2]) + " ago"
