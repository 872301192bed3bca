"""What the diagnostics share: the base class, the size caps and the redaction.

A diagnostic is a read-only action (``diagnostic = True``): ``plan`` reads nothing and
``apply`` gathers, returning an :class:`~monitor.actions.registry.Outcome` whose
``details`` hold the evidence (``result``, ``truncated``). The policy compiler lets a
diagnostic appear under ``diagnose:`` only, and nothing else there. Every result is cut
to :data:`MAX_BYTES` of JSON (rows, lines and cells to their own caps first) and passed
through :func:`redact` before it leaves the action.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import orjson
from pydantic import BaseModel

from monitor import secrets
from monitor.actions import registry
from monitor.actions.retries import RetryPolicy

P = TypeVar("P", bound=BaseModel)

MAX_BYTES = 64 * 1024  # the JSON of one result
MAX_LINE = 1000  # characters of one log line
MAX_CELL = 500  # characters of one table cell
MAX_ROWS = 200  # the most rows any table keeps
CUT = "…"

_SENSITIVE_NAMES = (
    r"[A-Za-z0-9_.-]*(?:PASSWORD|PASSWD|PWD|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY"
    r"|CREDENTIALS?|AUTH|COOKIE|SESSION)[A-Za-z0-9_.-]*"
)
_PATTERNS = (
    # KEY=value (env, query strings, logfmt) and "key": "value" (JSON) for secret-looking keys
    re.compile(rf"""(?i)(\b{_SENSITIVE_NAMES}=["']?)([^\s"',;&]+)"""),
    re.compile(rf"""(?i)("{_SENSITIVE_NAMES}"\s*:\s*")((?:[^"\\]|\\.)+)"""),
    # Authorization: Bearer xxx / Basic xxx
    re.compile(r"(?i)(\b(?:bearer|basic)\s+)([A-Za-z0-9._~+/=-]{8,})"),
    # scheme://user:password@host
    re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/\s@]*:)([^@\s/]+)(@)"),
)


def redact(text: str) -> str:
    """``text`` with secrets masked: values of secret-looking ``KEY=`` and JSON ``"key":`` fields,
    bearer and basic credentials, passwords in URLs, and every secret this process has
    resolved (:func:`monitor.secrets.mask`)."""
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m[1] + secrets.MASK + (m[3] if m.lastindex == 3 else ""), text)
    return secrets.mask(text)


def clip(text: str, limit: int) -> tuple[str, bool]:
    """``text`` cut to ``limit`` characters (ending in "…"), and whether it was cut."""
    if len(text) <= limit:
        return text, False
    return text[: max(limit - 1, 0)] + CUT, True


@dataclass(frozen=True)
class Found:
    """What a diagnostic gathered: one line for a page, the result, whether it was cut."""

    summary: str
    result: dict[str, Any]
    truncated: bool = False


def lines(found: list[str], summary: str, truncated: bool = False) -> Found:
    """A ``lines`` result: each line redacted and cut to :data:`MAX_LINE`, the whole to
    :data:`MAX_BYTES` (oldest lines dropped first: the newest matter most)."""
    kept: list[str] = []
    size = 0
    for line in reversed(found):
        line, cut = clip(redact(line), MAX_LINE)
        truncated = truncated or cut
        size += len(line.encode()) + 4
        if size > MAX_BYTES - 1024:
            truncated = True
            break
        kept.append(line)
    return Found(summary, {"kind": "lines", "lines": kept[::-1]}, truncated)


def table(
    columns: list[str], rows: list[list[Any]], summary: str, truncated: bool = False
) -> Found:
    """A ``table`` result: strings redacted and cut to :data:`MAX_CELL`, at most
    :data:`MAX_ROWS` rows, the whole within :data:`MAX_BYTES` (last rows dropped)."""
    if len(rows) > MAX_ROWS:
        rows, truncated = rows[:MAX_ROWS], True
    kept: list[list[Any]] = []
    size = len(orjson.dumps(columns))
    for row in rows:
        cells = []
        for cell in row:
            if isinstance(cell, str):
                cell, cut = clip(redact(cell), MAX_CELL)
                truncated = truncated or cut
            cells.append(cell)
        size += len(orjson.dumps(cells)) + 1
        if size > MAX_BYTES - 1024:
            truncated = True
            break
        kept.append(cells)
    return Found(summary, {"kind": "table", "columns": columns, "rows": kept}, truncated)


class Diagnostic(registry.Action[P]):
    """Base of the diagnostics: read-only, tried once, bounded by the policy's timeout."""

    diagnostic: ClassVar[bool] = True
    timeout: ClassVar[float] = 60.0  # the policy's diagnose[].timeout applies per run

    def retry_policy(self, params: P, ctx: registry.ActionContext) -> RetryPolicy | None:
        return RetryPolicy(attempts=1, deadline=self.timeout)

    async def plan(self, params: P, ctx: registry.ActionContext) -> registry.Plan:
        return registry.Plan(action=self.name, summary=f"read {self.name}", noop=True)

    async def apply(
        self, params: P, ctx: registry.ActionContext, plan: registry.Plan
    ) -> registry.Outcome:
        found = await self.gather(params, ctx)
        return registry.Outcome(
            summary=clip(redact(found.summary), MAX_CELL)[0],
            details={"result": found.result, "truncated": found.truncated},
        )

    async def gather(self, params: P, ctx: registry.ActionContext) -> Found:
        raise NotImplementedError
