"""The replay's report: a dict with stable keys (``--json``) and a readable text.

Keys (docs/replay.md documents each): ``window`` (since, until, step), ``source``,
``episodes``, ``alerts``, ``decisions``, ``policies`` (one entry per policy and target,
sorted), ``peak_concurrent_actions``, ``peak_actions_per_hour``, ``never_matched``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from monitor import durations
from monitor.replay.simulate import GUARDRAILS, Outcome


def _iso(at: datetime | None) -> str | None:
    return at.isoformat().replace("+00:00", "Z") if at is not None else None


def build(outcome: Outcome, *, step: timedelta | None, source: str) -> dict[str, Any]:
    """The report of ``outcome`` as plain JSON-able data."""
    entries = []
    for (policy, target), t in sorted(outcome.tallies.items()):
        entries.append(
            {
                "policy": policy,
                "target": target,
                "alerts": t.alerts,
                "executions": t.executions,
                "steps": {str(k): v for k, v in sorted(t.steps.items())},
                "recovered": t.recovered,
                "escalated": t.escalated,
                "ladder_exhausted": t.ladder_exhausted,
                "stopped": {g: t.stopped.get(g, 0) for g in GUARDRAILS},
                "deferred": {g: t.deferred.get(g, 0) for g in GUARDRAILS},
                "budget_exhausted": {"times": t.budget_exhausted, "first": _iso(t.budget_first)},
                "coalesced": t.coalesced,
                "reverts": {
                    "done": t.reverts_done,
                    "cancelled": t.reverts_cancelled,
                    "pending": t.reverts_pending,
                },
            }
        )
    peak, peak_at = _peak(outcome.in_effect)
    hourly, hour = _per_hour(outcome.actions)
    return {
        "window": {
            "since": _iso(outcome.since),
            "until": _iso(outcome.until),
            "step": durations.format(step) if step is not None else None,
        },
        "source": source,
        "episodes": outcome.episodes,
        "alerts": outcome.alerts,
        "decisions": outcome.decisions,
        "policies": entries,
        "peak_concurrent_actions": {"count": peak, "at": _iso(peak_at)},
        "peak_actions_per_hour": {"count": hourly, "hour": _iso(hour)},
        "never_matched": outcome.never_matched,
    }


def _peak(spans: list[tuple[datetime, datetime]]) -> tuple[int, datetime | None]:
    """Most actions in effect at once, and when that was first reached (an action ends
    before one that starts at the same instant)."""
    edges = sorted([(end, -1) for _, end in spans] + [(start, 1) for start, _ in spans])
    best, at, now = 0, None, 0
    for when, delta in edges:
        now += delta
        if now > best:
            best, at = now, when
    return best, at


def _per_hour(actions: list[datetime]) -> tuple[int, datetime | None]:
    """The clock hour with the most actions, and how many."""
    counts: dict[datetime, int] = {}
    for at in actions:
        hour = at.replace(minute=0, second=0, microsecond=0)
        counts[hour] = counts.get(hour, 0) + 1
    if not counts:
        return 0, None
    hour = min(counts, key=lambda h: (-counts[h], h))
    return counts[hour], hour


def _counts(values: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in values.items() if v) or "-"


def render(report: dict[str, Any]) -> str:
    """The report as text: a table per policy and target, then the peaks."""
    window = report["window"]
    lines = [
        f"replay {window['since']} .. {window['until']}"
        + (f" (step {window['step']})" if window["step"] else "")
        + f" from {report['source']}",
        f"{report['episodes']} episodes of {report['alerts']} alerts, "
        f"{report['decisions']} decisions",
        "",
    ]
    columns = [
        "POLICY",
        "TARGET",
        "ALERTS",
        "EXEC",
        "STEPS",
        "RECOVERED",
        "ESCALATED",
        "COALESCED",
        "STOPPED",
        "BUDGET SPENT",
        "REVERTS",
    ]
    rows = []
    for e in report["policies"]:
        budget = e["budget_exhausted"]
        reverts = e["reverts"]
        rows.append(
            [
                e["policy"],
                e["target"],
                str(e["alerts"]),
                str(e["executions"]),
                " ".join(f"{k}:{v}" for k, v in e["steps"].items()) or "-",
                str(e["recovered"]),
                str(e["escalated"]),
                str(e["coalesced"]),
                _counts(e["stopped"]),
                f"{budget['times']} from {budget['first']}" if budget["times"] else "-",
                f"{reverts['done']} done, {reverts['cancelled']} cancelled, "
                f"{reverts['pending']} pending"
                if any(reverts.values())
                else "-",
            ]
        )
    if rows:
        widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
        lines.append("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
        lines += [
            "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows
        ]
    else:
        lines.append("no policy matched any alert")
    peak = report["peak_concurrent_actions"]
    hourly = report["peak_actions_per_hour"]
    lines += [
        "",
        f"peak concurrent actions: {peak['count']}" + (f" at {peak['at']}" if peak["at"] else ""),
        f"peak actions per hour: {hourly['count']}"
        + (f" in the hour from {hourly['hour']}" if hourly["hour"] else ""),
        "never matched: " + (", ".join(report["never_matched"]) or "-"),
    ]
    return "\n".join(lines)
