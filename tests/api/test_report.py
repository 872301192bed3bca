"""The incident record of a real ladder: ``GET /api/v1/executions/{id}/report`` and
``conea-monitor report ID`` against the running service.

One incident is driven through the service once (a module fixture): the first try of
step 1 hits a 500 from the Kubernetes API and is tried again, step 1 does not recover the
alert, step 2 is escalated to and does not either, the ladder is exhausted, someone pauses
and resumes automation meanwhile, the alert resolves and both changes are reverted.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.store import database, evidence
from monitor.store.records import Evidence
from tests.engine.conftest import Harness, alert, harness, wait_for
from tests.support import kube_thread
from tests.support.kube_objects import deployment_with_pods, pod_status

LADDER = """
policies:
  - name: api-errors
    match: ['alertname="ErrorsHigh"']
    target: {kind: Deployment, namespace: production, name: conea-api}
    steps:
      - [{action: kubernetes.set_env, with: {env: {FIRST: "1"}}}]
      - [{action: kubernetes.set_env, with: {env: {SECOND: "1"}}}]
    cooldown: 0s
    verify: {window: 2s, interval: 500ms}
    revert: {enabled: true, after: 1s}
    diagnose: [{action: kubernetes.pods}]
"""

HOSTILE = "<img src=x onerror=alert(1)> [click](http://evil.example) | **x** `y`\n# z"


@dataclass
class Incident:
    h: Harness
    first: dict[str, Any]
    second: dict[str, Any]


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def incident(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Incident]:
    directory = tmp_path_factory.mktemp("report")
    with kube_thread.emulator() as emu:
        dep, rs, *pods = deployment_with_pods()
        for obj in (dep, rs, pod_status(pods[0], ready=False, restarts=7), pod_status(pods[1])):
            emu.add(obj)
        with harness(directory, LADDER, emulator=emu) as h:
            # The first PATCH fails with a 500: a temporary error, tried again.
            emu.call(lambda e: e.fail(500, method="PATCH", plural="deployments"))
            starts = _now()
            firing = alert("ErrorsHigh", "1ce1", starts=starts, severity="critical", team=HOSTILE)
            firing["annotations"]["summary"] = "errors on conea-api <script>x</script>"
            h.post(firing)
            h.wait_execution("1ce1", "succeeded")
            assert h.service.admin("/api/v1/pause", {"reason": "looking"}).status_code == 200
            assert h.service.admin("/api/v1/resume", {"reason": "done"}).status_code == 200
            second = h.wait_execution("1ce1", "succeeded", step=2, timeout=30)
            wait_for(lambda: ("escalate", "exhausted") in h.audit_of("1ce1"), 30, "no step left")
            resolved = alert(
                "ErrorsHigh", "1ce1", status="resolved", starts=starts, severity="critical"
            )
            resolved["endsAt"] = _now()
            resolved["labels"]["team"] = HOSTILE
            h.post(resolved)
            wait_for(
                lambda: all(e["revert_state"] == "done" for e in h.executions(fingerprint="1ce1")),
                30,
                "both steps reverted",
            )
            first = next(e for e in h.executions(fingerprint="1ce1") if e["step"] == 1)
            _gather(directory / "data" / "conea-monitor.db", first["id"], second["id"])
            yield Incident(h, first, second)


def _gather(store: Path, first: int, second: int) -> None:
    """What the policy's diagnostics would have stored, into the service's own store:
    pods before step 1 (a hostile pod name), logs after its failed check (a line that
    tries to close the code block, and more lines than a block shows), a query that
    timed out after step 2's."""
    db = database.connect(f"sqlite:///{store}")
    at = datetime.now(UTC)
    try:
        for item in (
            _evidence(
                first,
                "before",
                "pod-names",
                "kubernetes.pods",
                at,
                {
                    "kind": "table",
                    "columns": ["pod", "ready", "restarts"],
                    "rows": [["conea-api-1|<b>x</b>", "0/1", 7], ["conea-api-2", "1/1", 0]],
                },
            ),
            _evidence(
                first,
                "after_verification",
                "errors",
                "kubernetes.logs",
                at,
                {
                    "kind": "lines",
                    "lines": ["ERROR ``` </code><script>x</script>"]
                    + [f"ERROR line {i}" for i in range(60)],
                },
                truncated=True,
            ),
            _evidence(
                first,
                "after_verification",
                "cpu",
                "prometheus.query",
                at,
                {
                    "kind": "series",
                    "metric": 'rate(cpu{pod="<i>x</i>"}[5m])',
                    "points": [[1764385200 + 60 * i, i / 2] for i in range(60)],
                },
            ),
            _evidence(
                second,
                "after_verification",
                "locks",
                "postgres.activity",
                at,
                None,
                outcome="timed_out",
                error="timed out after 5s",
            ),
        ):
            evidence.add(db, item)
    finally:
        db.dispose()


def _evidence(
    execution_id: int,
    phase: str,
    name: str,
    action: str,
    at: datetime,
    result: dict[str, Any] | None,
    *,
    outcome: str = "ok",
    error: str | None = None,
    truncated: bool = False,
) -> Evidence:
    return Evidence(
        id=0,
        execution_id=execution_id,
        phase=phase,
        name=name,
        action=action,
        started_at=at,
        finished_at=at + timedelta(milliseconds=250),
        outcome=outcome,
        error=error,
        summary=f"{name}: {outcome}",
        result=result,
        truncated=truncated,
    )


def _report(incident: Incident, execution_id: int, **params: str) -> Any:
    response = incident.h.service.get(f"/api/v1/executions/{execution_id}/report", params=params)
    assert response.status_code == 200, response.text
    return response


def test_the_timeline_tells_the_incident_in_order(incident: Incident) -> None:
    body = _report(incident, incident.second["id"]).json()
    assert body["execution_id"] == incident.second["id"]
    assert (body["policy"], body["target"], body["mode"]) == (
        "api-errors",
        "Deployment/production/conea-api",
        "live",
    )
    assert body["open"] is False
    assert body["alert"]["name"] == "ErrorsHigh"
    assert body["alert"]["severity"] == "critical"
    assert body["alert"]["labels"]["team"] == HOSTILE
    assert body["alert"]["summary"] == "errors on conea-api <script>x</script>"
    assert body["alert"]["generatorURL"] == "http://prometheus:9090/graph?g0.expr=up"
    assert body["alert"]["status"] == "resolved"
    assert [
        (s["step"], s["state"], s["verify_state"], s["revert_state"]) for s in body["steps"]
    ] == [
        (1, "succeeded", "not_recovered", "done"),
        (2, "succeeded", "not_recovered", "done"),
    ]
    # The policy's diagnostic, run by the engine before step 1 and after each failed
    # check; then what the test stored beside it.
    assert [(e["step"], e["phase"], e["name"], e["outcome"]) for e in body["evidence"]] == [
        (1, "before", "kubernetes.pods", "ok"),
        (1, "after_verification", "kubernetes.pods", "ok"),
        (1, "before", "pod-names", "ok"),
        (1, "after_verification", "errors", "ok"),
        (1, "after_verification", "cpu", "ok"),
        (2, "after_verification", "kubernetes.pods", "ok"),
        (2, "after_verification", "locks", "timed_out"),
    ]
    pods = body["evidence"][0]
    assert pods["summary"] == (
        "2 pods of deployment production/conea-api, 1 not ready (Running, 7 restarts)"
    )
    assert [row[:4] for row in pods["result"]["rows"]] == [
        ["conea-api-7d9f-x0", "Running", "0/1", 7],
        ["conea-api-7d9f-x1", "Running", "1/1", 0],
    ]
    assert body["evidence"][2]["result"]["rows"][0] == ["conea-api-1|<b>x</b>", "0/1", 7]
    assert body["steps"][0]["actions"][0]["attempts"] == 2  # the 500, then the try that worked

    timeline = body["timeline"]
    assert timeline == sorted(timeline, key=lambda e: e["at"])

    def moment(e: dict[str, Any]) -> tuple[str, int | None, str | None]:
        if e["kind"] == "evidence":  # which diagnostic run: before, or after a check
            return ("evidence", e["step"], e["message"].split(":")[0])
        return (e["kind"], e["step"], e["outcome"])

    seen = [moment(e) for e in timeline]
    before = "kubernetes.pods (before the first step)"
    after = "kubernetes.pods (after a failed check)"
    expected = [
        ("alert", None, "firing"),
        ("decision", 1, "execute"),
        ("evidence", 1, before),
        ("verify", 1, "not_recovered"),
        ("evidence", 1, after),
        ("escalate", 1, "step 2"),
        ("decision", 2, "execute"),
        ("execute", 2, "succeeded"),
        ("verify", 2, "not_recovered"),
        ("evidence", 2, after),
        ("escalate", 2, "exhausted"),
        ("alert", None, "resolved"),
    ]
    positions = [seen.index(e) for e in expected]  # each present...
    assert positions == sorted(positions)  # ...and in this order
    step_1 = [
        ("decision", 1, "execute"),
        ("plan", 1, "kubernetes.set_env"),
        ("retry", 1, "apply"),
        ("execute", 1, "succeeded"),
        ("pause", None, "paused"),
        ("resume", None, "resumed"),
        ("verify", 1, "not_recovered"),
    ]
    positions = [seen.index(e) for e in step_1]
    assert positions == sorted(positions)
    reverted = [seen.index(("revert", step, "done")) for step in (1, 2)]
    assert min(reverted) > seen.index(("alert", None, "resolved"))  # undone once resolved
    gathered = [e["message"] for e in timeline if e["kind"] == "evidence"]
    assert gathered[0] == (
        "kubernetes.pods (before the first step): 2 pods of deployment "
        "production/conea-api, 1 not ready (Running, 7 restarts)"
    )
    assert "locks (postgres.activity, after a failed check): locks: timed_out" in gathered
    retry = next(e for e in timeline if e["kind"] == "retry")
    assert "500" in retry["message"]
    pause = next(e for e in timeline if e["kind"] == "pause")
    assert "automation paused by operator-token: looking" in pause["message"]

    summary = body["summary"]
    assert summary["fired"].startswith(
        "ErrorsHigh (severity critical) on Deployment/production/conea-api"
    )
    assert summary["done"] == (
        "step 1: kubernetes.set_env (succeeded); step 2: kubernetes.set_env (succeeded)"
    )
    assert summary["worked"].startswith("no: not recovered")
    assert "no step left after step 2 of 'api-errors'" in summary["worked"]
    assert summary["took"].endswith("from firing to resolution")


def test_every_step_of_the_ladder_gives_the_same_record(incident: Incident) -> None:
    one = _report(incident, incident.first["id"]).json()
    two = _report(incident, incident.second["id"]).json()
    assert one["execution_id"] == incident.first["id"]
    assert one["timeline"] == two["timeline"] and one["steps"] == two["steps"]


def test_markdown_has_the_sections_and_escapes_what_came_from_outside(
    incident: Incident,
) -> None:
    response = _report(incident, incident.second["id"], format="markdown")
    assert response.headers["content-type"] == "text/markdown; charset=utf-8"
    text = response.text
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert headings == [
        f"# Incident: ErrorsHigh on Deployment/production/conea-api (execution \\#"
        f"{incident.second['id']})",
        "## Summary",
        "## Alert",
        "### Labels",
        "## Steps",
        f"### Step 1: execution \\#{incident.first['id']}",
        f"### Step 2: execution \\#{incident.second['id']}",
        "## Evidence",
        "### kubernetes.pods (step 1, before the first step): ok",
        "### kubernetes.pods (step 1, after a failed check): ok",
        "### pod-names (kubernetes.pods, step 1, before the first step): ok",
        "### errors (kubernetes.logs, step 1, after a failed check): ok",
        "### cpu (prometheus.query, step 1, after a failed check): ok",
        "### kubernetes.pods (step 2, after a failed check): ok",
        "### locks (postgres.activity, step 2, after a failed check): timed\\_out",
        "## Timeline",
    ]
    # Evidence: a table with the hostile pod name escaped, the log lines in a block whose
    # fence is longer than the backticks inside, capped, and the failure said.
    assert r"| conea-api-1\|\<b\>x\</b\> | 0/1 | 7 |" in text
    block = text.split("````text\n", 1)[1].split("\n````\n", 1)
    lines = block[0].splitlines()
    assert lines[0] == "ERROR ``` </code><script>x</script>"
    assert len(lines) == 50 and lines[-1] == "ERROR line 48"
    assert block[1].startswith("\n*11 more lines left out*")
    assert "**Error:** timed out after 5s" in text
    # A series: its newest points as a table of UTC times, the metric escaped.
    assert r'Series rate(cpu{pod="\<i\>x\</i\>"}\[5m\]) (the last 50 of 60 points):' in text
    assert "| 2025-11-29 03:10:00 UTC | 5 |" in text
    assert "| 2025-11-29 03:59:00 UTC | 29.5 |" in text
    assert "*cut to the diagnostic's size limit*" in text
    assert "- **Did it work:** no: not recovered" in text
    assert "- **Severity:** critical" in text
    # The hostile label: one table row, every active character escaped, the line break gone.
    [row] = [line for line in text.splitlines() if line.startswith("| team |")]
    assert row == (
        r"| team | \<img src=x onerror=alert(1)\> \[click\](http://evil.example) \| "
        r"\*\*x\*\* \`y\` \# z |"
    )
    outside_blocks = re.sub(r"(?ms)^(`{3,})text$.*?^\1$", "", text)
    assert not re.search(r"(?<!\\)[<>\[`]", outside_blocks)  # no tag, link, code span
    assert r"- **Summary:** errors on conea-api \<script\>x\</script\>" in text
    assert "  - **Tries:** 2" in text
    assert "| api.env.FIRST |  | 1 |" in text  # the plan's change: (field, before, after)
    timeline = text.split("## Timeline\n\n", 1)[1].splitlines()
    assert timeline[0].endswith("**alert**: ErrorsHigh fired → firing")
    assert any(
        "**escalate** (step 1): not recovered" in line and line.endswith("→ step 2")
        for line in timeline
    )
    assert all(line.startswith("- 20") and " UTC **" in line for line in timeline)


def test_unknown_id_is_404_and_bad_format_or_id_400(incident: Incident) -> None:
    service = incident.h.service
    missing = service.get("/api/v1/executions/999999/report")
    assert missing.status_code == 404
    assert missing.json() == {"error": "no execution with id 999999"}
    bad = service.get(
        f"/api/v1/executions/{incident.first['id']}/report", params={"format": "html"}
    )
    assert bad.status_code == 400
    assert bad.json()["details"][0]["field"] == "query.format"
    zero = service.get("/api/v1/executions/0/report")
    assert zero.status_code == 400
    assert zero.json()["details"][0]["field"] == "path.execution_id"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_prints_the_record_over_http(incident: Incident, tmp_path: Path) -> None:
    service = incident.h.service
    token = tmp_path / "token"
    token.write_text(service.operator_token() + "\n")
    common = ["--url", service.url, "--token-file", str(token)]
    done = _cli("report", str(incident.second["id"]), *common)
    assert done.returncode == 0, done.stderr
    api = _report(incident, incident.second["id"], format="markdown").text
    assert done.stdout == api  # markdown by default, as the API renders it
    as_json = _cli("report", str(incident.first["id"]), "--format", "json", *common)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == _report(incident, incident.first["id"]).json()
    short = _cli("report", str(incident.first["id"]), "--json", *common)
    assert short.stdout == as_json.stdout
    missing = _cli("report", "999999", *common)
    assert missing.returncode == 1
    assert missing.stdout == ""
    assert missing.stderr == (
        "conea-monitor: error: GET /api/v1/executions/999999/report: 404 "
        "no execution with id 999999\n"
    )
