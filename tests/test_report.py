"""The incident record beyond the ladder of tests/api/test_report.py: a step awaiting
approval then rejected (who said no), a rehearsal (marked as such), the viewer
credential the route needs, and the Markdown helpers' escaping and caps."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.report import markdown
from tests.engine.conftest import Harness, alert, harness
from tests.support import kube_thread
from tests.support import notifier as notifier_server
from tests.support import service as svc
from tests.support.kube_objects import deployment

POLICY = """
policies:
  - name: relimit
    match: ['alertname="TooManyRequests"']
    target: {kind: Deployment, namespace: production, name: conea-api}
    steps:
      - [{action: kubernetes.set_env, with: {env: {RATE_LIMIT: "50"}}}]
      - [{action: log, with: {message: "page the on-call"}}]
    cooldown: 0s
    verify: {window: 1h}
"""


@pytest.fixture
def emu() -> Iterator[kube_thread.ThreadedEmulator]:
    with kube_thread.emulator() as emulator:
        emulator.add(deployment())
        yield emulator


def _report(h: Harness, execution_id: int, **params: str) -> Any:
    response = h.service.get(f"/api/v1/executions/{execution_id}/report", params=params)
    assert response.status_code == 200, response.text
    return response


def test_a_step_awaiting_approval_is_open_and_who_rejected_it_is_on_record(
    tmp_path: Path, emu: kube_thread.ThreadedEmulator
) -> None:
    with (
        notifier_server.running() as inbox,
        harness(
            tmp_path,
            POLICY,
            emulator=emu,
            automation={"mode": "approval", "approval": {"notifier": "approvers"}},
            notifiers={"approvers": {"kind": "webhook", "url": inbox.url, "retries": 0}},
        ) as h,
    ):
        h.post(alert("TooManyRequests", "a9a9", severity="warning"))
        waiting = h.wait_execution("a9a9", "awaiting_approval")
        body = _report(h, waiting["id"]).json()
        assert body["open"] is True
        assert body["summary"]["worked"] == "not yet: step 1 awaits approval"
        assert body["summary"]["took"].startswith("still open; last recorded ")
        refused = h.service.admin(
            f"/api/v1/executions/{waiting['id']}/reject", {"reason": "sale day", "by": "bob"}
        )
        assert refused.status_code == 200, refused.text
        body = _report(h, waiting["id"]).json()
        assert body["open"] is False
        assert [(s["state"], s["reason"]) for s in body["steps"]] == [
            ("rejected", "rejected by bob (api, 127.0.0.1): sale day")
        ]
        answers = [(e["outcome"], e["by"]) for e in body["timeline"] if e["kind"] == "approval"]
        assert answers == [("requested", None), ("rejected", "bob (api, 127.0.0.1)")]
        assert body["summary"]["worked"] == "no: step 1 rejected by bob (api, 127.0.0.1): sale day"
        text = _report(h, waiting["id"], format="markdown").text
        assert "- **State:** rejected: rejected by bob (api, 127.0.0.1): sale day" in text
        assert "- **Did it work:** no: step 1 rejected by bob (api, 127.0.0.1): sale day" in text
        assert "> **Rehearsal**" not in text


def test_a_rehearsal_is_marked_as_one(tmp_path: Path, emu: kube_thread.ThreadedEmulator) -> None:
    with harness(tmp_path, POLICY, emulator=emu, automation={"mode": "rehearsal"}) as h:
        h.post(alert("TooManyRequests", "4e4e"))
        rehearsed = h.wait_execution("4e4e", "rehearsed")
        body = _report(h, rehearsed["id"]).json()
        assert body["mode"] == "rehearsal"
        assert [(s["mode"], s["state"]) for s in body["steps"]] == [("rehearsal", "rehearsed")]
        assert body["summary"]["done"] == (
            "step 1: kubernetes.set_env (rehearsed) [rehearsal: nothing was changed; every "
            "step was planned and recorded only]"
        )
        text = _report(h, rehearsed["id"], format="markdown").text
        lines = text.splitlines()
        assert lines[2] == (
            "> **Rehearsal**: nothing was changed; every step was planned and recorded only."
        )
        assert f"### Step 1 (rehearsal): execution \\#{rehearsed['id']}" in lines


def test_the_record_needs_a_viewer_credential(tmp_path: Path) -> None:
    config = svc.write_config(tmp_path, access={"viewer_token": "view-tok"})
    (tmp_path / "viewer").write_text("view-tok\n")
    with svc.running(config) as service:
        anonymous = service.get("/api/v1/executions/1/report")
        assert anonymous.status_code == 401
        viewer = service.get(
            "/api/v1/executions/1/report", headers={"authorization": "Bearer view-tok"}
        )
        assert viewer.status_code == 404
        token = ["--token-file", str(tmp_path / "viewer")]
        done = subprocess.run(
            [sys.executable, "-m", "monitor", "report", "1", "--url", service.url, *token],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2
        assert "404 no execution with id 1" in done.stderr
        assert "view-tok" not in done.stderr


def test_inline_values_render_as_themselves_on_one_line() -> None:
    hostile = "<script>x</script> [a](javascript:b) ![i](c) *e* _f_ `g` | ~h~ &amp; \\\n# j"
    assert markdown.escape(hostile) == (
        r"\<script\>x\</script\> \[a\](javascript:b) \!\[i\](c) \*e\* \_f\_ \`g\` \| \~h\~ "
        r"\&amp; \\ \# j"
    )
    assert markdown.escape("x" * 500) == "x" * 299 + "…"
    assert markdown.escape("a\x00b\x1bc\u2028d") == "abcd"


def test_a_code_block_cannot_be_closed_from_inside_and_is_capped() -> None:
    block = markdown.code_block(["ok", "`````", "a\rb"], "text")
    assert block.splitlines() == ["``````text", "ok", "`````", "ab", "``````"]
    many = markdown.code_block(f"line {i}" for i in range(53))
    assert many.splitlines()[-1] == "*3 more lines left out*"
    assert markdown.code_block(["y" * 1000]).splitlines()[1] == "y" * 399 + "…"


def test_a_table_keeps_to_its_columns_and_rows() -> None:
    rows: list[list[object]] = [["1|2", None, "extra"], [0.5]]
    rows += [["r"] for _ in range(60)]
    rendered = markdown.table(["a", "b"], rows)
    lines = rendered.splitlines()
    assert lines[:4] == ["| a | b |", "|---|---|", r"| 1\|2 |  |", "| 0.5 |  |"]
    assert len([line for line in lines if line.startswith("| r |")]) == 48
    assert lines[-1] == "*12 more rows left out*"
