"""The states of an execution, and the one table of the moves between them.

An execution row carries three machines, one column each: ``state`` (the decision and
the action), ``verify_state`` (did it work?) and ``revert_state`` (undoing it once the
alert resolved). :data:`TRANSITIONS` lists every allowed move; ``None`` as a source is
the row's birth (its INSERT). The store refuses any other move before it touches the
database (:class:`IllegalTransition`), and guards each UPDATE by the current state, so
of two replicas moving one row exactly one wins.

Pure: no SQLAlchemy, no I/O. ``python -m monitor.store.states`` prints the diagram that
docs/states.md embeds (``--write docs/states.md`` refreshes it there).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Literal, get_args

from monitor.errors import StoreError


class State(StrEnum):
    """``executions.state``: where the decision and the action stand."""

    DEFERRED = "deferred"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REHEARSED = "rehearsed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    AWAITING_APPROVAL = "awaiting_approval"
    REJECTED = "rejected"
    EXPIRED = "expired"


class VerifyState(StrEnum):
    """``executions.verify_state``: whether the alert recovered after a step succeeded."""

    NONE = "none"
    PENDING = "pending"
    RECOVERED = "recovered"
    NOT_RECOVERED = "not_recovered"
    ERROR = "error"


class RevertState(StrEnum):
    """``executions.revert_state``: undoing a step once its alert resolved."""

    NONE = "none"
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


Machine = Literal["state", "verify_state", "revert_state"]
MACHINES: tuple[Machine, ...] = get_args(Machine)

ENUMS: Mapping[Machine, type[StrEnum]] = {
    "state": State,
    "verify_state": VerifyState,
    "revert_state": RevertState,
}

TRANSITIONS: Mapping[Machine, Mapping[StrEnum | None, frozenset[StrEnum]]] = {
    "state": {
        None: frozenset({State.DEFERRED, State.RUNNING}),
        State.DEFERRED: frozenset(
            {
                State.DEFERRED,  # decided again later: a new due time
                State.RUNNING,  # claimed when due
                State.SKIPPED,  # a guardrail says no when due
                State.CANCELLED,  # the alert resolved, or the policy is gone
                State.AWAITING_APPROVAL,  # a person is asked before it acts
            }
        ),
        State.AWAITING_APPROVAL: frozenset(
            {
                State.DEFERRED,  # approved: decided again at once, guardrails and all
                State.REJECTED,
                State.EXPIRED,  # nobody answered within approval.timeout
                State.CANCELLED,  # the alert resolved, or the policy is gone
            }
        ),
        State.RUNNING: frozenset(
            {
                State.SUCCEEDED,
                State.FAILED,
                State.REHEARSED,  # rehearsal: planned, nothing applied
                State.DEFERRED,  # the target was busy with another execution
            }
        ),
    },
    "verify_state": {
        None: frozenset({VerifyState.NONE}),
        VerifyState.NONE: frozenset({VerifyState.PENDING}),
        VerifyState.PENDING: frozenset(
            {VerifyState.RECOVERED, VerifyState.NOT_RECOVERED, VerifyState.ERROR}
        ),
    },
    "revert_state": {
        None: frozenset({RevertState.NONE}),
        RevertState.NONE: frozenset({RevertState.SCHEDULED}),
        RevertState.SCHEDULED: frozenset({RevertState.CANCELLED, RevertState.RUNNING}),
        RevertState.RUNNING: frozenset({RevertState.DONE, RevertState.FAILED}),
    },
}

ACTED: frozenset[State] = frozenset({State.RUNNING, State.SUCCEEDED, State.FAILED})
"""Live executions that acted (or tried to) on their target: what cooldown and budget
count (rows with ``dry_run`` false)."""

REHEARSAL_ACTED: frozenset[State] = frozenset({State.RUNNING, State.REHEARSED})
"""Rehearsed executions that would have acted: what a rehearsal's own cooldown and budget
count (rows with ``dry_run`` true); they never count for live mode."""

REHEARSAL_LOCK = "rehearsal:"


def lock_key(target_key: str, rehearsal: bool) -> str:
    """The key of a target's lock: a rehearsal holds its own, never the live one."""
    return REHEARSAL_LOCK + target_key if rehearsal else target_key


FINAL: Mapping[Machine, frozenset[StrEnum]] = {
    machine: frozenset(s for s in ENUMS[machine] if not TRANSITIONS[machine].get(s))
    for machine in MACHINES
}
"""Per machine, the states nothing leaves."""


class IllegalTransition(StoreError):
    """A move the state table does not allow; nothing was written."""

    def __init__(
        self,
        machine: Machine,
        source: StrEnum | None,
        target: StrEnum | str,
        what: str = "",
        *,
        reason: str | None = None,
    ) -> None:
        prefix = f"{what}: " if what else ""
        if reason is not None:
            message = f"{prefix}{machine} -> {str(target)!r} is not allowed: {reason}"
        else:
            allowed_next = sorted(TRANSITIONS[machine].get(source, frozenset()))
            start = "birth" if source is None else repr(str(source))
            hint = ", ".join(repr(str(s)) for s in allowed_next) or "nothing (it is final)"
            message = (
                f"{prefix}{machine} {start} -> {str(target)!r} is not allowed; "
                f"from {start} it may move to {hint}"
            )
        super().__init__(message)
        self.machine = machine
        self.source = source
        self.target = target


def allowed(machine: Machine, source: StrEnum | None, target: StrEnum) -> bool:
    """Does the table allow ``machine`` to move from ``source`` (None: birth) to ``target``?"""
    table = TRANSITIONS.get(machine)
    if table is None:
        return False
    return target in table.get(source, frozenset())


def sources_of(machine: Machine, target: StrEnum) -> frozenset[StrEnum]:
    """The states ``machine`` may reach ``target`` from (births left out)."""
    return frozenset(s for s, ts in TRANSITIONS[machine].items() if s is not None and target in ts)


_IDS: Mapping[Machine, str] = {"state": "s", "verify_state": "v", "revert_state": "r"}


def diagram() -> str:
    """The Mermaid ``stateDiagram-v2`` of the three machines, generated from the table:
    one box per column, ``[*] -->`` a birth, ``--> [*]`` a final state."""
    lines = ["stateDiagram-v2"]
    for machine in MACHINES:
        p = _IDS[machine]
        lines.append(f'    state "executions.{machine}" as {p} {{')
        for member in ENUMS[machine]:
            lines.append(f'        state "{member}" as {p}_{member}')
        for source, targets in TRANSITIONS[machine].items():
            begin = "[*]" if source is None else f"{p}_{source}"
            for target in sorted(targets):
                lines.append(f"        {begin} --> {p}_{target}")
        for final in sorted(FINAL[machine]):
            lines.append(f"        {p}_{final} --> [*]")
        lines.append("    }")
    return "\n".join(lines) + "\n"


BEGIN = "<!-- states:begin (generated: python -m monitor.store.states --write docs/states.md) -->"
END = "<!-- states:end -->"


def block() -> str:
    """What docs/states.md holds between its markers: the diagram in a mermaid fence."""
    return f"{BEGIN}\n```mermaid\n{diagram()}```\n{END}"


def embed(text: str) -> str:
    """``text`` (a Markdown document with the markers) with a fresh diagram between them."""
    head, sep, rest = text.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise ValueError(f"the markers {BEGIN!r} and {END!r} are missing")
    return head + block() + tail


def main(argv: list[str]) -> int:
    if argv[:1] == ["--write"] and len(argv) == 2:
        path = Path(argv[1])
        path.write_text(embed(path.read_text(encoding="utf-8")), encoding="utf-8")
        return 0
    if argv:
        print("usage: python -m monitor.store.states [--write docs/states.md]", file=sys.stderr)
        return 2
    print(block())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
