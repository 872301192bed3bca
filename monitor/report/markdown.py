"""The incident record as Markdown, a postmortem draft.

Label values, annotations, messages and log lines come from outside (an alert's author,
the cluster's pods): they are untrusted text. Inline, every character Markdown or HTML
would act on is escaped with a backslash and line breaks become spaces, so a value can
open no link, image, tag, table cell or heading; in code blocks the fence is longer than
any run of backticks inside. Every value, table and block is capped (``…`` and a note
say where).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from monitor.report.record import NOTHING_CHANGED, Entry, Report
from monitor.store.records import ActionEntry, Evidence, Execution

TEXT_LIMIT = 300  # characters of one inline value
CELL_LIMIT = 120  # characters of one table cell
LINE_LIMIT = 400  # characters of one line in a code block
ROWS_LIMIT = 50  # rows of one table, lines of one block
COLUMNS_LIMIT = 12  # columns of one table
TIMELINE_LIMIT = 500  # entries of the timeline

# What Markdown (CommonMark, GFM) or HTML acts on inside a line; a value never starts one.
_SPECIAL = re.compile(r"([\\`*_\[\]<>#!|~&])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029]")
_BREAKS = re.compile(r"[\r\n\t]+")


def escape(value: object, limit: int = TEXT_LIMIT) -> str:
    """``value`` as inline Markdown text that renders as itself, on one line, capped."""
    text = _BREAKS.sub(" ", _CONTROL.sub("", str(value)))
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return _SPECIAL.sub(r"\\\1", text)


def code_block(lines: Iterable[object], language: str = "") -> str:
    """A fenced block of ``lines`` (each capped, at most ``ROWS_LIMIT``)."""
    kept: list[str] = []
    more = 0
    for line in lines:
        if len(kept) == ROWS_LIMIT:
            more += 1
            continue
        text = _CONTROL.sub("", str(line).replace("\r", "").replace("\n", " "))
        kept.append(text[: LINE_LIMIT - 1] + "…" if len(text) > LINE_LIMIT else text)
    runs = [len(r) for r in re.findall(r"`+", "\n".join(kept))]
    fence = "`" * max(3, max(runs, default=0) + 1)
    block = "\n".join([fence + language, *kept, fence])
    return block + (f"\n\n*{more:,} more lines left out*" if more else "")


def table(columns: Sequence[object], rows: Iterable[Sequence[object]]) -> str:
    """A table, every cell escaped and capped, at most ``ROWS_LIMIT`` rows."""
    head = "| " + " | ".join(escape(c, CELL_LIMIT) for c in columns) + " |"
    lines = [head, "|" + "---|" * len(columns)]
    more = 0
    for row in rows:
        if len(lines) - 2 == ROWS_LIMIT:
            more += 1
            continue
        cells = [escape(_cell(v), CELL_LIMIT) for v in row]
        cells += [""] * (len(columns) - len(cells))
        lines.append("| " + " | ".join(cells[: len(columns)]) + " |")
    out = "\n".join(lines)
    return out + (f"\n\n*{more:,} more rows left out*" if more else "")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else "—"


def render(report: Report) -> str:
    """The record as Markdown: summary, alert, steps, evidence, timeline."""
    alert = report.alert
    parts = [
        f"# Incident: {escape(alert.name)} on {escape(report.target)} "
        f"(execution \\#{report.execution_id})",
    ]
    if report.rehearsal:
        parts.append(f"> **Rehearsal**: {NOTHING_CHANGED}.")
    s = report.summary
    parts += [
        "## Summary",
        "\n".join(
            [
                f"- **What fired:** {escape(s.fired)}",
                f"- **What was done:** {escape(s.done, 1000)}",
                f"- **Did it work:** {escape(s.worked, 1000)}",
                f"- **How long:** {escape(s.took)}",
            ]
        ),
        "## Alert",
        "\n".join(
            [
                f"- **Alert:** {escape(alert.name)}",
                f"- **Severity:** {escape(alert.severity or 'none given')}",
                f"- **Status:** {escape(alert.status)}",
                f"- **Summary:** {escape(alert.summary or '—')}",
                f"- **Started:** {when(alert.starts_at)}",
                f"- **Ended:** {when(alert.ended_at)}",
                f"- **Source:** {escape(alert.generator_url or '—')}",
                f"- **Fingerprint:** {escape(alert.fingerprint)}",
                f"- **Policy:** {escape(report.policy)}",
            ]
        ),
        "### Labels",
        table(["label", "value"], sorted(alert.labels.items())),
        "## Steps",
    ]
    for step in report.steps:
        parts += _step(step)
    coalesced = int(report.coalesced.get("count") or 0)
    if coalesced:
        parts.append(
            f"{coalesced:,} more alert{'s' if coalesced != 1 else ''} on the same target "
            "were coalesced into this incident (see the timeline)."
        )
    parts.append("## Evidence")
    if not report.evidence:
        parts.append("No diagnostics ran for this incident.")
    steps = {e.id: e.step + 1 for e in report.steps}
    for item in report.evidence:
        parts += _evidence(item, steps)
    parts.append("## Timeline")
    parts.append(_timeline(report.timeline))
    if report.truncated:
        parts.append("*The audit trail of this incident is longer than the report shows.*")
    return "\n\n".join(parts) + "\n"


def _step(e: Execution) -> list[str]:
    mode = " (rehearsal)" if e.dry_run else ""
    facts = [
        f"- **State:** {escape(e.state)}" + (f": {escape(e.reason)}" if e.reason else ""),
        f"- **Decided:** {when(e.created_at)}; **finished:** {when(e.finished_at)}",
    ]
    if e.approved_by:
        facts.append(f"- **Approved by:** {escape(e.approved_by)} at {when(e.approved_at)}")
    if e.error:
        facts.append(f"- **Error:** {escape(e.error)}")
    verified = escape(e.verify_state)
    if e.verify_detail:
        verified += f": {escape(e.verify_detail)}"
    facts.append(f"- **Verification:** {verified}")
    facts.append(f"- **Revert:** {escape(e.revert_state)}")
    out = [f"### Step {e.step + 1}{mode}: execution \\#{e.id}", "\n".join(facts)]
    for number, action in enumerate(e.actions, 1):
        out += _action(number, action)
    return out


def _action(number: int, a: ActionEntry) -> list[str]:
    lines = [f"- **Action {number}:** {escape(a.action)}"]
    plan = a.plan or {}
    if plan.get("summary"):
        lines.append(f"  - **Plan:** {escape(plan['summary'])}")
    outcome = a.outcome or {}
    if outcome.get("summary"):
        lines.append(f"  - **Result:** {escape(outcome['summary'])}")
    if a.error:
        lines.append(f"  - **Error:** {escape(a.error)}")
    lines.append(f"  - **Tries:** {a.attempts}")
    if a.revert:
        lines.append(f"  - **Reverted:** {escape(a.revert.get('summary', 'yes'))}")
    if a.revert_error:
        lines.append(f"  - **Revert failed:** {escape(a.revert_error)}")
    out = ["\n".join(lines)]
    changes = [c for c in plan.get("changes") or [] if isinstance(c, dict)]
    if changes:
        out.append(
            table(
                ["field", "before", "after"],
                ([c.get("field"), c.get("before"), c.get("after")] for c in changes),
            )
        )
    return out


def _evidence(item: Evidence, steps: dict[int, int]) -> list[str]:
    phase = "before the first step" if item.phase == "before" else "after a failed check"
    step = steps.get(item.execution_id)
    where = f"step {step}, {phase}" if step is not None else phase
    out = [f"### {escape(item.name)} ({escape(item.action)}, {where}): {escape(item.outcome)}"]
    took = (item.finished_at - item.started_at).total_seconds()
    facts = [f"Gathered {when(item.started_at)} in {took:.2f}s"]
    if item.summary:
        facts.append(escape(item.summary))
    if item.error:
        facts.append(f"**Error:** {escape(item.error)}")
    if item.truncated:
        facts.append("*cut to the diagnostic's size limit*")
    out.append(" · ".join(facts))
    result = item.result or {}
    kind = result.get("kind")
    if kind == "table":
        columns = list(result.get("columns") or [])[:COLUMNS_LIMIT]
        rows = result.get("rows") or []
        out.append(table(columns, (r if isinstance(r, list) else [r] for r in rows)))
    elif kind == "lines":
        out.append(code_block(result.get("lines") or [], "text"))
    elif kind == "series":
        points = list(result.get("points") or [])
        out.append(f"Series {escape(_metric(result.get('metric')))}:")
        out.append(table(["time", "value"], (_point(p) for p in points[-ROWS_LIMIT:])))
    return out


def _metric(metric: object) -> str:
    if isinstance(metric, dict):
        name = str(metric.get("__name__", ""))
        rest = ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
        return f"{name}{{{rest}}}"
    return str(metric or "")


def _point(point: object) -> list[object]:
    if isinstance(point, (list, tuple)) and len(point) == 2:
        at, value = point
        if isinstance(at, (int, float)):
            at = when(datetime.fromtimestamp(at, UTC))
        return [at, value]
    return [point, ""]


def _timeline(entries: Sequence[Entry]) -> str:
    lines = []
    for e in entries[:TIMELINE_LIMIT]:
        where = f" (step {e.step})" if e.step is not None else ""
        outcome = f" → {escape(e.outcome, CELL_LIMIT)}" if e.outcome else ""
        lines.append(
            f"- {when(e.at)} **{escape(e.kind, 40)}**{where}: {escape(e.message)}{outcome}"
        )
    if len(entries) > TIMELINE_LIMIT:
        lines.append(f"- *{len(entries) - TIMELINE_LIMIT:,} more entries left out*")
    return "\n".join(lines) or "Nothing recorded."
