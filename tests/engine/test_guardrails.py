"""Every guardrail stops a remediation with its reason in the audit trail and a metric."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.engine.conftest import alert, harness, wait_for
from tests.support import kube_thread
from tests.support.services import alertmanager_server

POLICIES = """
time_intervals:
  - name: year-2001
    time_intervals: [{years: ["2001"]}]
policies:
  - name: restart
    match: ['alertname="ApiDown"']
    target: {kind: Deployment, namespace: "{{ labels.namespace }}",
             name: "{{ labels.deployment }}"}
    steps: [[{action: kubernetes.restart}]]
    cooldown: 1h
    budget: {attempts: 5, window: 1h}
  - name: budgeted
    match: ['alertname="Budgeted"']
    target: {kind: Deployment, namespace: production, name: worker}
    steps: [[{action: kubernetes.restart}]]
    cooldown: 0s
    budget: {attempts: 1, window: 1h}
  - name: patient
    match: ['alertname="Patient"']
    target: {kind: Deployment, namespace: production, name: billing}
    steps: [[{action: kubernetes.restart}]]
    for_at_least: 3s
  - name: office-hours-2001
    match: ['alertname="Old"']
    target: {kind: Deployment, namespace: production, name: billing}
    steps: [[{action: log}]]
    active_time_intervals: [year-2001]
  - name: busy
    match: ['alertname="Busy"']
    target: {kind: Deployment, namespace: production, name: conea-api}
    steps: [[{action: kubernetes.set_env, with: {env: {SLOW: "1"}}}]]
    cooldown: 0s
"""


def skip_reasons(h: object, fingerprint: str) -> list[tuple[str, str | None, str]]:
    from tests.engine.conftest import Harness

    assert isinstance(h, Harness)
    return [(a["kind"], a["outcome"], a["message"]) for a in h.audit(fingerprint=fingerprint)]


def test_guardrails(tmp_path: Path, emu: kube_thread.ThreadedEmulator) -> None:
    with harness(
        tmp_path, POLICIES, emulator=emu, automation={"namespaces_deny": ["kube-*", "secret-ns"]}
    ) as h:
        # scope: a namespace in the deny list is never touched.
        h.post(alert("ApiDown", "0a01", namespace="secret-ns"))
        wait_for(lambda: h.audit(fingerprint="0a01"), 10, "scope audit")
        [(kind, outcome, message)] = skip_reasons(h, "0a01")
        assert (kind, outcome) == ("skip", "scope")
        assert message == "'restart': scope: namespace 'secret-ns' is in the deny list"

        # a label that is not a valid namespace never reaches the API.
        h.post(alert("ApiDown", "0a02", namespace="Prod/../kube-system"))
        wait_for(lambda: h.audit(fingerprint="0a02"), 10, "target audit")
        [(kind, outcome, message)] = skip_reasons(h, "0a02")
        assert (kind, outcome) == ("skip", "target")
        assert "is not a DNS-1123 label" in message

        # cooldown: the first alert acts, a second one on the same target waits.
        h.post(alert("ApiDown", "0a03"))
        h.wait_execution("0a03", "succeeded")
        h.post(alert("ApiDown", "0a04"))
        deferred = h.wait_execution("0a04", "deferred")
        assert deferred["reason"].startswith("target was acted on at")
        due = datetime.fromisoformat(deferred["due_at"])
        assert timedelta(minutes=59) < due - datetime.now(UTC) <= timedelta(hours=1)
        assert [k[:2] for k in skip_reasons(h, "0a04")] == [("defer", "cooldown")]

        # budget: one attempt per hour, the second alert is refused.
        h.post(alert("Budgeted", "0b01"))
        h.wait_execution("0b01", "succeeded")
        h.post(alert("Budgeted", "0b02"))
        wait_for(lambda: h.audit(fingerprint="0b02"), 10, "budget audit")
        [(kind, outcome, message)] = skip_reasons(h, "0b02")
        assert (kind, outcome) == ("skip", "budget")
        assert "budget spent: 1 of 1 attempts" in message

        # time interval: outside the active interval, re-checked later, nothing runs.
        h.post(alert("Old", "0c01"))
        assert h.wait_execution("0c01", "deferred")["reason"] == (
            "outside the policy's active time intervals"
        )

        # for_at_least: deferred until the alert has fired 3s, then it acts.
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        h.post(alert("Patient", "0d01", starts=now))
        first = h.wait_execution("0d01", "deferred")
        assert "required; deciding again in" in first["reason"]
        done = h.wait_execution("0d01", "succeeded", timeout=15)
        assert done["id"] == first["id"]  # the same claimed execution, decided again
        assert [k[:2] for k in skip_reasons(h, "0d01")][:2] == [
            ("defer", "for_at_least"),
            ("decision", "execute"),
        ]

        # concurrency: while one execution holds the target, another waits its turn.
        emu.call(lambda e: e.stall(3.0, method="PATCH", plural="deployments"))
        h.post(alert("Busy", "0e01"))
        wait_for(
            lambda: any(e["state"] == "running" for e in h.executions(fingerprint="0e01")),
            10,
            "first execution running",
        )
        h.post(alert("Busy", "0e02"))
        wait_for(
            lambda: ("defer", "concurrency") in [k[:2] for k in skip_reasons(h, "0e02")],
            10,
            "concurrency deferral",
        )
        h.wait_execution("0e01", "succeeded")

        # paused: the kill switch stops everything, and says who pulled it.
        paused = h.service.get("/api/v1/status").json()
        assert paused["paused"] is False
        response = h.service.admin("/api/v1/pause", {"reason": "incident 42"})
        assert response.json() == {"paused": True}
        h.post(alert("ApiDown", "0f01", deployment="billing"))
        wait_for(lambda: h.audit(fingerprint="0f01"), 10, "paused audit")
        [(kind, outcome, message)] = skip_reasons(h, "0f01")
        assert (kind, outcome, message) == (
            "skip",
            "paused",
            "'restart': paused: automation is paused",
        )
        pause_record = [a for a in h.audit() if a["kind"] == "pause"]
        assert pause_record[0]["message"].endswith(": incident 42")
        # Resume decides the alert skipped during the pause again (tests/engine/test_catchup.py).
        assert h.service.admin("/api/v1/resume").json() == {
            "paused": False,
            "caught_up": 1,
            "message": "automation resumed; 1 alert skipped during the pause is decided again",
        }

        metrics = h.service.get("/metrics").text
        for policy, guardrail in [
            ("restart", "scope"),
            ("restart", "cooldown"),
            ("budgeted", "budget"),
            ("office-hours-2001", "time_interval"),
            ("patient", "for_at_least"),
            ("busy", "concurrency"),
            ("restart", "paused"),
            ("restart", "target"),
        ]:
            assert (
                f'conea_monitor_skips_total{{guardrail="{guardrail}",policy="{policy}"}}' in metrics
            ), (policy, guardrail)


def test_stale_alert_is_not_acted_on(tmp_path: Path, emu: kube_thread.ThreadedEmulator) -> None:
    config = "route: {receiver: none}\nreceivers: [{name: none}]\n"
    with (
        alertmanager_server(config) as am,
        harness(tmp_path, POLICIES, emulator=emu, alertmanager_url=am.url) as h,
    ):
        # Alertmanager does not have this alert (any more): acting would be acting on a ghost.
        h.post(alert("ApiDown", "1a01"))
        wait_for(lambda: h.audit(fingerprint="1a01"), 10, "stale audit")
        [(kind, outcome, message)] = skip_reasons(h, "1a01")
        assert (kind, outcome) == ("skip", "stale")
        assert message == "'restart': stale: Alertmanager no longer has the alert"
        assert h.executions(fingerprint="1a01") == []
