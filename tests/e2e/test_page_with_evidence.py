"""An alert whose remediation does not help pages people with the evidence: the service
(a subprocess) runs the policy's diagnostics against the Kubernetes emulator, the
restart is not verified, and the next step pages Slack, PagerDuty and email, each
carrying what the diagnostics found and the link to the execution's page. When the alert
resolves, the PagerDuty incident is resolved, and the incident record says all of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.engine.conftest import alert, harness, wait_for
from tests.support import kube_thread, pagers
from tests.support import notifier as webhook
from tests.support.kube_objects import deployment_with_pods, event, pod_status

POLICY = """
policies:
  - name: api-down
    match: ['alertname="ApiDown"']
    target: {kind: Deployment, namespace: production, name: conea-api}
    diagnose:
      - {action: kubernetes.pods, name: pods}
      - {action: kubernetes.events, name: events}
      - {action: kubernetes.logs, name: errors, with: {tail: 20, filter: ERROR}}
    steps:
      - [{action: kubernetes.set_env, with: {env: {RESTARTED: "1"}}}]
      - - {action: notify, with: {notifier: slack, message: "The restart did not help"}}
        - {action: notify, with: {notifier: pager, message: "The restart did not help"}}
        - {action: notify, with: {notifier: mail, message: "The restart did not help"}}
    cooldown: 0s
    verify: {window: 2s, interval: 500ms}
"""


@pytest.fixture
def emu() -> Iterator[kube_thread.ThreadedEmulator]:
    with kube_thread.emulator() as emulator:
        dep, rs, *pods = deployment_with_pods(pods=2)
        for obj in (dep, rs):
            emulator.add(obj)
        emulator.add(pod_status(pods[0]))
        emulator.add(
            pod_status(
                pods[1],
                ready=False,
                restarts=7,
                waiting="CrashLoopBackOff",
                last_terminated="Error",
            )
        )
        emulator.add(
            event(
                "crash-1",
                pods[1],
                "BackOff",
                "Back-off restarting failed container",
                last="2026-11-28T14:26:00Z",
                type_="Warning",
                count=7,
            )
        )
        name = pods[1]["metadata"]["name"]
        emulator.call(
            lambda k: k.set_log(
                "production",
                name,
                ["INFO starting", "ERROR cannot reach db:5432: connection refused", "INFO bye"],
            )
        )
        yield emulator


def test_a_failed_remediation_pages_with_the_evidence_and_the_link(
    tmp_path: Path, emu: kube_thread.ThreadedEmulator
) -> None:
    with (
        webhook.running() as slack,
        pagers.service("pagerduty") as pd,
        pagers.mailbox(tmp_path) as box,
    ):
        notifiers: dict[str, Any] = {
            "slack": {"kind": "slack", "url": slack.url},
            "pager": {
                "kind": "pagerduty",
                "url": pd.url,
                "routing_key": {"env": "CONEA_TEST_PD_KEY"},
            },
            "mail": {
                "kind": "email",
                "host": box.host,
                "port": box.port,
                "from": "conea-monitor@conea.io",
                "to": ["oncall@conea.io"],
                "ca_file": str(box.ca_file),
            },
        }
        env = {"CONEA_TEST_PD_KEY": pagers.ROUTING_KEY}
        with harness(
            tmp_path,
            POLICY,
            emulator=emu,
            env=env,
            notifiers=notifiers,
            public_url="https://monitor.conea.io",
        ) as h:
            h.post(alert("ApiDown", "ad01"))
            page = h.wait_execution("ad01", "succeeded", step=2, timeout=30)
            link = trigger_link = pd.accepted[0]["links"][0]["href"]  # the execution's page
            assert link.startswith("https://monitor.conea.io/")
            assert link.endswith(f"/executions/{page['id']}")

            # PagerDuty: the documented event (the fake checks its schema), the evidence.
            [trigger] = pd.events("trigger")
            assert pd.received == pd.accepted
            assert trigger["dedup_key"] == f"conea-monitor/{page['id']}"
            assert trigger["links"][0]["href"] == trigger_link
            found = {e["name"]: e for e in trigger["payload"]["custom_details"]["evidence"]}
            assert {"pods", "events", "errors"} <= set(found)
            assert "not ready" in found["pods"]["summary"]
            assert any("CrashLoopBackOff" in line for line in found["pods"]["excerpt"])
            assert any("Back-off restarting" in line for line in found["events"]["excerpt"])
            assert any("connection refused" in line for line in found["errors"]["excerpt"])

            # Slack: the evidence section and the link.
            [message] = slack.requests
            text = "\n".join(
                b.get("text", {}).get("text", "") if isinstance(b.get("text"), dict) else ""
                for b in message["blocks"]
            )
            assert "*Evidence*" in text and "connection refused" in text
            links = message["blocks"][-1]["elements"][0]["text"]
            assert f"<{link}|Audit record>" in links

            # Email: over STARTTLS, the evidence and the link in its text.
            [mail] = box.messages
            body = mail.get_body(("plain",))
            assert body is not None and box.tls_sessions == 1
            plain = body.get_content()
            assert "Evidence:" in plain and "connection refused" in plain
            assert f"Execution: {link}" in plain

            # The alert resolves: the incident is resolved with the same key.
            h.post(alert("ApiDown", "ad01", status="resolved"))
            resolved = wait_for(lambda: pd.events("resolve"), 20, "the resolve event")
            assert [e["dedup_key"] for e in resolved] == [f"conea-monitor/{page['id']}"]
            wait_for(lambda: ("page", "resolved") in h.audit_of("ad01"), 20, "the audit")

            # The incident record tells the same story: evidence, the page and its end.
            report = h.service.get(
                f"/api/v1/executions/{page['id']}/report", params={"format": "markdown"}
            )
            assert report.status_code == 200
            assert "## Evidence" in report.text and "connection refused" in report.text
            assert "conea-monitor/" in report.text  # the page resolved, with its dedup key
