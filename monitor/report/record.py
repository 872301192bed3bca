"""The incident record: one alert's ladder under one policy as a postmortem draft.

:func:`build` reads what the store holds about the incident an execution is a step of
(:mod:`monitor.store.report`): the alert, every step with its plans, results and tries,
its verification, escalation and revert, who approved, rejected, paused or resumed, and
the evidence the policy's diagnostics gathered; and orders it into one timeline.
:meth:`Report.as_json` is what ``GET /api/v1/executions/{id}/report`` answers;
:func:`monitor.report.markdown.render` is the same as Markdown, for ``conea-monitor
report ID --format markdown`` and a page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from monitor.store import database, records
from monitor.store import report as store_report
from monitor.store.states import State, VerifyState

NOTHING_CHANGED = "nothing was changed; every step was planned and recorded only"


@dataclass(frozen=True)
class Entry:
    """One moment of the timeline. ``step`` is 1-based (None: not about one step)."""

    at: datetime
    kind: str
    message: str
    step: int | None = None
    execution_id: int | None = None
    outcome: str | None = None
    by: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "at": _iso(self.at),
            "kind": self.kind,
            "message": self.message,
            "step": self.step,
            "execution_id": self.execution_id,
            "outcome": self.outcome,
            "by": self.by,
        }


@dataclass(frozen=True)
class Alert:
    """The alert as Alertmanager sent it (``severity`` is its label, if any)."""

    name: str
    severity: str | None
    fingerprint: str
    status: str
    labels: dict[str, str]
    summary: str | None
    starts_at: datetime
    ended_at: datetime | None
    generator_url: str

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "severity": self.severity,
            "fingerprint": self.fingerprint,
            "status": self.status,
            "labels": self.labels,
            "summary": self.summary,
            "startsAt": _iso(self.starts_at),
            "endedAt": _iso(self.ended_at),
            "generatorURL": self.generator_url,
        }


@dataclass(frozen=True)
class Summary:
    """The four questions a reader asks first."""

    fired: str
    done: str
    worked: str
    took: str

    def as_json(self) -> dict[str, str]:
        return {"fired": self.fired, "done": self.done, "worked": self.worked, "took": self.took}


@dataclass(frozen=True)
class Report:
    """``execution_id``: the execution asked for; ``steps``: the ladder by step."""

    execution_id: int
    policy: str
    target: str
    rehearsal: bool
    open: bool
    alert: Alert
    summary: Summary
    steps: tuple[records.Execution, ...]
    timeline: tuple[Entry, ...]
    evidence: tuple[records.Evidence, ...]
    coalesced: dict[str, Any]
    truncated: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "execution_id": self.execution_id,
            "policy": self.policy,
            "target": self.target,
            "mode": "rehearsal" if self.rehearsal else "live",
            "open": self.open,
            "alert": self.alert.as_json(),
            "summary": self.summary.as_json(),
            "steps": [_step_json(e) for e in self.steps],
            "timeline": [e.as_json() for e in self.timeline],
            "evidence": [_evidence_json(item, self.steps) for item in self.evidence],
            "coalesced": self.coalesced,
            "truncated": self.truncated,
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _step_json(e: records.Execution) -> dict[str, Any]:
    return {
        "step": e.step + 1,
        "execution_id": e.id,
        "mode": "rehearsal" if e.dry_run else "live",
        "state": str(e.state),
        "reason": e.reason,
        "error": e.error,
        "created_at": _iso(e.created_at),
        "finished_at": _iso(e.finished_at),
        "approved_by": e.approved_by,
        "approved_at": _iso(e.approved_at),
        "verify_state": str(e.verify_state),
        "verify_detail": e.verify_detail,
        "revert_state": str(e.revert_state),
        "actions": [a.stored() for a in e.actions],
    }


def gathered(item: records.Evidence, step: int | None = None) -> str:
    """ "pods (kubernetes.pods, step 1, before the first step)": which diagnostic, when."""
    when = {
        "before": "before the first step",
        "after_verification": "after a failed check",
        "after_failure": "after the step failed",
    }.get(item.phase, item.phase)
    if step is not None:
        when = f"step {step}, {when}"
    what = f"{item.action}, {when}" if item.name != item.action else when
    return f"{item.name} ({what})"


def _evidence_json(item: records.Evidence, ladder: tuple[records.Execution, ...]) -> dict[str, Any]:
    step = next((e.step + 1 for e in ladder if e.id == item.execution_id), None)
    return {
        "id": item.id,
        "execution_id": item.execution_id,
        "step": step,
        "phase": item.phase,
        "name": item.name,
        "action": item.action,
        "started_at": _iso(item.started_at),
        "finished_at": _iso(item.finished_at),
        "outcome": item.outcome,
        "error": item.error,
        "summary": item.summary,
        "result": item.result,
        "truncated": item.truncated,
    }


def build(handle: database.Handle, execution_id: int) -> Report | None:
    """The incident record of the ladder ``execution_id`` is a step of (None: no such
    execution). Synchronous: the API runs it in a worker thread."""
    found = store_report.incident(handle, execution_id)
    if found is None:
        return None
    asked = next(e for e in found.executions if e.id == execution_id)
    steps = {e.id: e.step + 1 for e in found.executions}
    alert = _alert(asked, found)
    entries = [Entry(alert.starts_at, "alert", f"{alert.name} fired", outcome="firing")]
    if found.alert is not None:
        entries.append(
            Entry(found.alert["first_received_at"], "alert", "delivered by Alertmanager")
        )
    for row in found.audit:
        entries.append(_audited(row, steps))
    for item in found.evidence:
        entries.append(
            Entry(
                item.started_at,
                "evidence",
                f"{gathered(item)}: {item.summary or item.error or ''}",
                steps.get(item.execution_id),
                item.execution_id,
                item.outcome,
            )
        )
    if found.resolved_at is not None:
        entries.append(
            Entry(found.resolved_at, "alert", f"{alert.name} resolved", outcome="resolved")
        )
    timeline = tuple(sorted(entries, key=lambda e: e.at))  # stable: the store's order kept
    ladder = tuple(found.executions)
    return Report(
        execution_id=execution_id,
        policy=asked.policy,
        target=asked.target_key,
        rehearsal=any(e.dry_run for e in ladder),
        open=found.open,
        alert=alert,
        summary=_summary(alert, ladder, timeline, found.open),
        steps=ladder,
        timeline=timeline,
        evidence=tuple(found.evidence),
        coalesced=found.coalesced,
        truncated=found.truncated,
    )


def _alert(asked: records.Execution, found: store_report.Incident) -> Alert:
    row = found.alert or {}
    labels = {str(k): str(v) for k, v in (row.get("labels") or asked.labels).items()}
    annotations = row.get("annotations") or {}
    summary = annotations.get("summary") or annotations.get("description")
    return Alert(
        name=asked.alertname,
        severity=labels.get("severity"),
        fingerprint=asked.fingerprint,
        status="resolved" if found.resolved_at is not None else "firing",
        labels=labels,
        summary=str(summary) if summary else None,
        starts_at=asked.starts_at,
        ended_at=found.resolved_at,
        generator_url=str(row.get("generator_url") or ""),
    )


def _audited(row: dict[str, Any], steps: dict[int, int]) -> Entry:
    details = row.get("details") or {}
    by = details.get("by") if isinstance(details, dict) else None
    execution_id = row.get("execution_id")
    return Entry(
        row["at"],
        str(row["kind"]),
        str(row["message"]),
        steps.get(execution_id) if execution_id is not None else None,
        execution_id,
        row.get("outcome"),
        str(by) if by else None,
    )


def _summary(
    alert: Alert, ladder: tuple[records.Execution, ...], timeline: tuple[Entry, ...], still: bool
) -> Summary:
    severity = f" (severity {alert.severity})" if alert.severity else ""
    target = ladder[0].target_key
    fired = f"{alert.name}{severity} on {target}, firing since {_when(alert.starts_at)}"
    done = "; ".join(
        f"step {e.step + 1}: "
        + (", ".join(a.action for a in e.actions) or "no action")
        + f" ({e.state})"
        for e in ladder
    )
    if any(e.dry_run for e in ladder):
        done += f" [rehearsal: {NOTHING_CHANGED}]"
    worked, ended = _worked(alert, ladder, timeline)
    if ended is not None:
        took = f"{_duration(ended - alert.starts_at)} from firing to " + (
            "recovery" if "recovered after" in worked else "resolution"
        )
    else:
        last = timeline[-1].at if timeline else alert.starts_at
        took = ("still open; " if still else "") + (
            f"last recorded {_duration(last - alert.starts_at)} after it fired"
        )
    return Summary(fired, done, worked, took)


def _worked(
    alert: Alert, ladder: tuple[records.Execution, ...], timeline: tuple[Entry, ...]
) -> tuple[str, datetime | None]:
    """Did it work, and when did the incident end (None: not over)."""
    for e in ladder:
        if e.verify_state == VerifyState.RECOVERED:
            verdict = next(
                (t for t in timeline if t.kind == "verify" and t.execution_id == e.id), None
            )
            at = verdict.at if verdict else alert.ended_at
            if e.dry_run:  # nothing was changed: the alert went away by itself
                return f"the alert recovered after step {e.step + 1} was rehearsed", at
            return f"yes: recovered after step {e.step + 1}", at
    exhausted = [t for t in timeline if t.kind == "escalate" and t.outcome == "exhausted"]
    last = ladder[-1]
    if exhausted:
        return f"no: {exhausted[-1].message}", alert.ended_at
    if last.state == State.REJECTED:
        return f"no: step {last.step + 1} {last.reason or 'rejected'}", alert.ended_at
    if last.verify_state == VerifyState.PENDING:
        return f"not known yet: step {last.step + 1} is being verified", alert.ended_at
    if last.state == State.FAILED:
        return f"no: step {last.step + 1} failed: {last.error or last.reason}", alert.ended_at
    if last.state == State.AWAITING_APPROVAL:
        return f"not yet: step {last.step + 1} awaits approval", alert.ended_at
    if alert.ended_at is not None:
        return "the alert resolved", alert.ended_at
    reason = f": {last.reason}" if last.reason else ""
    return f"step {last.step + 1} is {last.state}{reason}", None


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    return " ".join([*parts, f"{seconds}s"] if seconds or not parts else parts)
