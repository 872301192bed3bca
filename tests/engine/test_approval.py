"""Approval mode, end to end: a real Alertmanager (the still-firing check), the
notifier that receives the request with its signed links and the diagnostics' evidence,
the links themselves, the operator API, the command line, rejection and expiry."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.engine.conftest import Harness, harness, notification, wait_for
from tests.support import kube_objects, kube_thread
from tests.support import notifier as notifier_server
from tests.support.notifier import Recorder
from tests.support.services import Alertmanager, alertmanager_server

POLICIES = """
policies:
  - name: relimit
    match: ['alertname="TooManyRequests"']
    target: {kind: Deployment, namespace: production, name: "{{ labels.deployment }}"}
    steps:
      - [{action: kubernetes.set_env, with: {env: {RATE_LIMIT: "50"}}}]
      - [{action: log, with: {message: "page the on-call"}}]
    cooldown: 0s
    verify: {window: 1h}
"""


def links(inbox: Recorder, deployment: str) -> dict[str, str]:
    """The approve and reject tokens of the request about ``deployment``."""
    for message in inbox.requests:
        text = str(message.get("message", ""))
        if f"Deployment/production/{deployment} " in text:
            found = dict(re.findall(r"(Approve|Reject): \S*/approvals/([\w.\-]+)", text))
            if found:
                return {"approve": found["Approve"], "reject": found["Reject"]}
    raise AssertionError(f"no approval request about {deployment}: {inbox.requests}")


@pytest.fixture
def inbox() -> Iterator[Recorder]:
    with notifier_server.running() as recorder:
        yield recorder


STARTS = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


def _active(am: Alertmanager, deployment: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = httpx.get(
        f"{am.url}/api/v2/alerts",
        params={"filter": f'deployment="{deployment}"', "active": "true"},
        timeout=10,
    ).json()
    return found


def _labels(deployment: str) -> dict[str, str]:
    return {"alertname": "TooManyRequests", "namespace": "production", "deployment": deployment}


def resolve(am: Alertmanager, deployment: str) -> None:
    ends = datetime.now(UTC) - timedelta(seconds=1)
    item = {
        "labels": _labels(deployment),
        "startsAt": STARTS.isoformat(),
        "endsAt": ends.isoformat(),
    }
    httpx.post(f"{am.url}/api/v2/alerts", json=[item], timeout=10).raise_for_status()
    wait_for(lambda: not _active(am, deployment), 10, "Alertmanager to resolve the alert")


def fire(am: Alertmanager, deployment: str) -> dict[str, Any]:
    """An alert made firing in Alertmanager, and the webhook alert with the fingerprint
    and start Alertmanager gave it."""
    labels = _labels(deployment)
    item = {"labels": labels, "startsAt": STARTS.isoformat()}
    httpx.post(f"{am.url}/api/v2/alerts", json=[item], timeout=10).raise_for_status()
    got = wait_for(lambda: next(iter(_active(am, deployment)), None), 10, "the alert in AM")
    return {
        "status": "firing",
        "labels": labels,
        "annotations": {},
        "startsAt": got["startsAt"],
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": got["fingerprint"],
    }


def settings(inbox: Recorder, am: Alertmanager, timeout: str) -> dict[str, Any]:
    return {
        "automation": {
            "mode": "approval",
            "approval": {"notifier": "approvers", "timeout": timeout},
        },
        "notifiers": {"approvers": {"kind": "webhook", "url": inbox.url, "retries": 0}},
        "alertmanager_url": am.url,
    }


def state_of(h: Harness, fingerprint: str, step: int = 1) -> str | None:
    rows = [e for e in h.executions(fingerprint=fingerprint) if e["step"] == step]
    return rows[0]["state"] if rows else None


AM_CONFIG = "route: {receiver: none}\nreceivers: [{name: none}]\n"
DIAGNOSED = POLICIES + "    diagnose: [{action: kubernetes.pods}]\n"


def test_approved_by_its_signed_link_the_step_acts_once_and_the_approver_is_recorded(
    tmp_path: Path, emu: kube_thread.ThreadedEmulator, inbox: Recorder
) -> None:
    with (
        alertmanager_server(AM_CONFIG) as am,
        harness(tmp_path, POLICIES, emulator=emu, **settings(inbox, am, "1h")) as h,
    ):
        alert = fire(am, "conea-api")
        assert h.service.post(notification(alert)).status_code == 200
        waiting = h.wait_execution(alert["fingerprint"], "awaiting_approval")
        assert waiting["actions"][0]["plan"]["changes"][0]["after"] == "50"
        assert "RATE_LIMIT" not in h.env()
        tokens = wait_for(lambda: inbox.requests and links(inbox, "conea-api"), 10, "the request")
        page = h.service.get(f"/approvals/{tokens['approve']}")
        assert page.status_code == 200 and "Approve this step?" in page.text
        assert "RATE_LIMIT" in page.text and "RATE_LIMIT" not in h.env()  # a GET changes nothing
        tampered = tokens["approve"][:-2] + ("AA" if tokens["approve"][-2:] != "AA" else "BB")
        assert httpx.post(f"{h.service.url}/approvals/{tampered}").status_code == 403
        answered = httpx.post(
            f"{h.service.url}/approvals/{tokens['approve']}",
            data={"by": "alice", "reason": "limit it"},
        )
        assert answered.status_code == 200, answered.text
        done = h.wait_execution(alert["fingerprint"], "succeeded")
        assert h.env()["RATE_LIMIT"] == "50"
        assert done["approved_by"] == "alice (signed link)"
        approvals = [
            a for a in h.audit(fingerprint=alert["fingerprint"]) if a["kind"] == "approval"
        ]
        assert [a["outcome"] for a in approvals] == ["requested", "approved"]
        assert approvals[1]["details"]["by"] == "alice (signed link)"
        assert approvals[1]["details"]["reason"] == "limit it"
        # Used once: the same link again, or the other answer's, changes nothing.
        again = httpx.post(f"{h.service.url}/approvals/{tokens['approve']}")
        assert again.status_code == 409
        assert httpx.post(f"{h.service.url}/approvals/{tokens['reject']}").status_code == 409
        metrics = h.service.get("/metrics").text
        assert 'conea_monitor_approvals_total{outcome="approved",policy="relimit"} 1.0' in metrics


def test_rejected_nothing_acts_unanswered_the_next_step_runs_resolved_it_is_not_acted_on(
    tmp_path: Path, emu: kube_thread.ThreadedEmulator, inbox: Recorder
) -> None:
    with (
        alertmanager_server(AM_CONFIG) as am,
        harness(tmp_path, POLICIES, emulator=emu, **settings(inbox, am, "6s")) as h,
    ):
        rejected, expiring, gone = (fire(am, n) for n in ("conea-api", "billing", "worker"))
        assert h.service.post(notification(rejected, expiring, gone)).status_code == 200
        for alert in (rejected, expiring, gone):
            h.wait_execution(alert["fingerprint"], "awaiting_approval")
        # Rejected with the operator token: nothing is applied, the ladder stops.
        token = h.service.operator_token()
        refused = h.service.admin(
            f"/api/v1/executions/{h.executions(fingerprint=rejected['fingerprint'])[0]['id']}"
            "/reject",
            {"reason": "not during the sale", "by": "bob"},
            token,
        )
        assert refused.status_code == 200, refused.text
        [answer] = [
            a
            for a in h.audit(fingerprint=rejected["fingerprint"])
            if a["kind"] == "approval" and a["outcome"] == "rejected"
        ]
        assert answer["details"]["by"] == "bob (operator-token)"  # the name, and the credential's
        # The third resolves in Alertmanager before it is approved: the still-firing
        # check at approval says so, and nothing acts.
        resolve(am, "worker")
        gone_id = h.executions(fingerprint=gone["fingerprint"])[0]["id"]
        assert h.service.admin(f"/api/v1/executions/{gone_id}/approve", {}, token).status_code == (
            200
        )
        assert wait_for(lambda: state_of(h, gone["fingerprint"]) == "skipped", 20, "stale")
        assert state_of(h, rejected["fingerprint"]) == "rejected"
        # Nobody answers the second: it expires and step 2 (a log line: not asked) runs.
        h.wait_execution(expiring["fingerprint"], "expired", timeout=30)
        h.wait_execution(expiring["fingerprint"], "succeeded", step=2, timeout=30)
        assert h.emulator.read("Deployment", "production", "conea-api")
        for name in ("conea-api", "billing", "worker"):
            assert "RATE_LIMIT" not in h.env(name)
        assert state_of(h, rejected["fingerprint"], step=2) is None  # no page after a no
        kinds = [a["outcome"] for a in h.audit(fingerprint=expiring["fingerprint"])]
        assert "expired" in kinds
        # A second answer to an answered request is a 409; an unknown one a 404.
        rejected_id = h.executions(fingerprint=rejected["fingerprint"])[0]["id"]
        again = h.service.admin(f"/api/v1/executions/{rejected_id}/approve", {}, token)
        assert again.status_code == 409 and "is rejected" in again.text
        assert h.service.admin("/api/v1/executions/999999/approve", {}, token).status_code == 404
        # Without the operator token nobody answers through the API.
        assert httpx.post(
            f"{h.service.url}/api/v1/executions/{rejected_id}/approve"
        ).status_code == (401)


def test_the_command_line_approves_and_the_service_acts(
    tmp_path: Path, emu: kube_thread.ThreadedEmulator, inbox: Recorder
) -> None:
    with (
        alertmanager_server(AM_CONFIG) as am,
        harness(tmp_path, POLICIES, emulator=emu, **settings(inbox, am, "1h")) as h,
    ):
        alert = fire(am, "billing")
        assert h.service.post(notification(alert)).status_code == 200
        waiting = h.wait_execution(alert["fingerprint"], "awaiting_approval")
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "monitor",
                "approve",
                str(waiting["id"]),
                "--reason",
                "go",
                "-c",
                str(h.service.config),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert "approved by cli" in result.stdout
        h.wait_execution(alert["fingerprint"], "succeeded")
        assert h.env("billing")["RATE_LIMIT"] == "50"
        twice = subprocess.run(
            [
                sys.executable,
                "-m",
                "monitor",
                "reject",
                str(waiting["id"]),
                "-c",
                str(h.service.config),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert twice.returncode == 1 and "not awaiting approval" in twice.stderr


def test_the_approver_sees_the_diagnostics_evidence_before_anyone_approves(
    tmp_path: Path, emu: kube_thread.ThreadedEmulator, inbox: Recorder
) -> None:
    for obj in kube_objects.deployment_with_pods("conea-api")[1:]:
        emu.add(obj)
    with (
        alertmanager_server(AM_CONFIG) as am,
        harness(tmp_path, DIAGNOSED, emulator=emu, **settings(inbox, am, "1h")) as h,
    ):
        alert = fire(am, "conea-api")
        assert h.service.post(notification(alert)).status_code == 200
        waiting = h.wait_execution(alert["fingerprint"], "awaiting_approval")
        tokens = wait_for(lambda: inbox.requests and links(inbox, "conea-api"), 10, "the request")
        [request] = [m for m in inbox.requests if str(m["title"]).startswith("Approve?")]
        assert [(e["name"], e["outcome"]) for e in request["evidence"]] == [
            ("kubernetes.pods", "ok")
        ]
        [pods_line] = request["evidence"]
        assert pods_line["summary"].startswith("2 pods of deployment production/conea-api")
        assert [line.split()[0] for line in pods_line["excerpt"]] == [
            "conea-api-7d9f-x0",
            "conea-api-7d9f-x1",
        ]
        # The incident record and the console's execution page show it, before any answer.
        report = h.service.get(f"/api/v1/executions/{waiting['id']}/report").json()
        assert [(e["phase"], e["name"]) for e in report["evidence"]] == [
            ("before", "kubernetes.pods")
        ]
        page = h.service.get(f"/ui/executions/{waiting['id']}")
        assert page.status_code == 200
        section = page.text.split('id="evidence"')[1].split("</section>")[0]
        assert "kubernetes.pods" in section and "conea-api-7d9f-x1" in section
        answered = httpx.post(f"{h.service.url}/approvals/{tokens['approve']}", data={"by": "al"})
        assert answered.status_code == 200, answered.text
        h.wait_execution(alert["fingerprint"], "succeeded")
        assert h.env()["RATE_LIMIT"] == "50"
