"""The state table: what it allows, what it refuses, and the diagram docs/states.md shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.errors import StoreError
from monitor.store import states
from monitor.store.states import RevertState, State, VerifyState

DOC = Path(__file__).parents[2] / "docs" / "states.md"


def test_the_execution_machine_allows_what_the_engine_does() -> None:
    moves = {
        (None if s is None else s.value, t.value)
        for s, ts in states.TRANSITIONS["state"].items()
        for t in ts
    }
    assert moves == {
        (None, "deferred"),
        (None, "running"),
        ("deferred", "deferred"),
        ("deferred", "running"),
        ("deferred", "skipped"),
        ("deferred", "cancelled"),
        ("deferred", "awaiting_approval"),
        ("awaiting_approval", "deferred"),
        ("awaiting_approval", "rejected"),
        ("awaiting_approval", "expired"),
        ("awaiting_approval", "cancelled"),
        ("running", "succeeded"),
        ("running", "failed"),
        ("running", "rehearsed"),
        ("running", "deferred"),
    }
    assert states.FINAL["state"] == {
        State.SUCCEEDED,
        State.FAILED,
        State.REHEARSED,
        State.SKIPPED,
        State.CANCELLED,
        State.REJECTED,
        State.EXPIRED,
    }
    assert {State.RUNNING, State.SUCCEEDED, State.FAILED} == states.ACTED


def test_verification_and_revert_move_forward_only() -> None:
    assert states.allowed("verify_state", VerifyState.NONE, VerifyState.PENDING)
    assert states.allowed("verify_state", VerifyState.PENDING, VerifyState.NOT_RECOVERED)
    assert not states.allowed("verify_state", VerifyState.RECOVERED, VerifyState.PENDING)
    assert not states.allowed("verify_state", VerifyState.NONE, VerifyState.RECOVERED)
    assert states.FINAL["verify_state"] == {
        VerifyState.RECOVERED,
        VerifyState.NOT_RECOVERED,
        VerifyState.ERROR,
    }
    assert states.allowed("revert_state", RevertState.SCHEDULED, RevertState.CANCELLED)
    assert states.allowed("revert_state", RevertState.RUNNING, RevertState.DONE)
    assert not states.allowed("revert_state", RevertState.NONE, RevertState.RUNNING)
    assert not states.allowed("revert_state", RevertState.DONE, RevertState.SCHEDULED)
    assert states.FINAL["revert_state"] == {
        RevertState.CANCELLED,
        RevertState.DONE,
        RevertState.FAILED,
    }


def test_a_refused_move_is_a_store_error_saying_what_is_allowed() -> None:
    assert not states.allowed("state", State.SUCCEEDED, State.RUNNING)
    error = states.IllegalTransition("state", State.SUCCEEDED, State.RUNNING, "execution 7")
    assert isinstance(error, StoreError)
    assert str(error) == (
        "execution 7: state 'succeeded' -> 'running' is not allowed; "
        "from 'succeeded' it may move to nothing (it is final)"
    )
    birth = states.IllegalTransition("state", None, State.SUCCEEDED)
    assert str(birth) == (
        "state birth -> 'succeeded' is not allowed; from birth it may move to 'deferred', 'running'"
    )


def test_docs_states_md_embeds_the_diagram_of_the_table() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert states.embed(text) == text, (
        "docs/states.md and monitor/store/states.py TRANSITIONS differ: run "
        "`python -m monitor.store.states --write docs/states.md`"
    )
    for machine in states.MACHINES:  # every state is explained in a table row
        for member in states.ENUMS[machine]:
            assert f"| `{member}` |" in text, (machine, member)


def test_the_diagram_draws_every_move_births_and_final_states() -> None:
    drawn = states.diagram()
    assert drawn.startswith("stateDiagram-v2\n")
    assert "        [*] --> s_running\n" in drawn
    assert "        s_running --> s_deferred\n" in drawn
    assert "        s_deferred --> s_deferred\n" in drawn
    assert "        v_pending --> v_not_recovered\n" in drawn
    assert "        r_scheduled --> r_cancelled\n" in drawn
    assert "        s_succeeded --> [*]\n" in drawn
    assert "s_succeeded --> s_" not in drawn
    arrows = sum(len(ts) for table in states.TRANSITIONS.values() for ts in table.values())
    finals = sum(len(f) for f in states.FINAL.values())
    assert drawn.count(" --> ") == arrows + finals


def test_the_module_prints_or_rewrites_the_doc_block(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert states.main([]) == 0
    assert capsys.readouterr().out == states.block() + "\n"
    stale = tmp_path / "states.md"
    stale.write_text(f"# Title\n\n{states.BEGIN}\nold diagram\n{states.END}\nafter\n")
    assert states.main(["--write", str(stale)]) == 0
    assert stale.read_text() == f"# Title\n\n{states.block()}\nafter\n"
    with pytest.raises(ValueError, match="markers"):
        states.embed("# no markers\n")
    assert states.main(["--bogus"]) == 2
