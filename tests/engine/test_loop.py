"""The engine through the webhook: match, plan, act, repeat, resolve, revert."""

from __future__ import annotations

from pathlib import Path

from tests.engine.conftest import alert, harness, wait_for
from tests.support import kube_thread

RATE_LIMIT = """
policies:
  - name: tighten-rate-limit
    match: ['alertname="HighLoad"']
    target:
      kind: Deployment
      namespace: "{{ labels.namespace }}"
      name: "{{ labels.deployment }}"
    steps:
      - - action: kubernetes.set_env
          with: {env: {RATE_LIMIT_PER_MINUTE: "100"}}
    cooldown: 0s
    verify: {window: 30s, interval: 1s}
    revert: {enabled: true, after: 1s}
"""


def test_match_plan_act_then_revert_after_resolve(
    tmp_path: Path, emu: kube_thread.ThreadedEmulator
) -> None:
    with harness(tmp_path, RATE_LIMIT, emulator=emu) as h:
        firing = alert("HighLoad", "f00d0001")
        h.post(firing)
        execution = h.wait_execution("f00d0001", "succeeded")
        assert execution["target_key"] == "Deployment/production/conea-api"
        assert execution["policy"] == "tighten-rate-limit"
        assert h.env()["RATE_LIMIT_PER_MINUTE"] == "100"
        [action] = execution["actions"]
        assert action["action"] == "kubernetes.set_env"
        assert "RATE_LIMIT_PER_MINUTE" in action["plan"]["summary"]
        kinds = h.audit_of("f00d0001")
        assert kinds[:3] == [
            ("decision", "execute"),
            ("plan", "kubernetes.set_env"),
            ("execute", "succeeded"),
        ]

        # Alertmanager re-sends the group: nothing runs twice.
        h.post(firing)
        h.post(firing)
        assert len(h.executions(fingerprint="f00d0001")) == 1
        assert h.audit_of("f00d0001") == kinds

        # Resolved: verification counts as recovered, the change is reverted after 1s.
        h.post(alert("HighLoad", "f00d0001", status="resolved"))
        done = wait_for(
            lambda: [
                e for e in h.executions(fingerprint="f00d0001") if e["revert_state"] == "done"
            ],
            20,
            "revert",
        )
        assert done[0]["verify_state"] == "recovered"
        assert "RATE_LIMIT_PER_MINUTE" not in h.env()
        assert ("revert", "scheduled") in h.audit_of("f00d0001")
        trail = h.audit_of("f00d0001")
        # Each action's revert, then the execution's revert machine moving to done.
        assert trail[-2:] == [("revert", "succeeded"), ("revert", "done")]
        metrics = h.service.get("/metrics").text
        assert (
            'conea_monitor_executions_total{action="kubernetes.set_env",outcome="succeeded",'
            'policy="tighten-rate-limit"} 1.0'
        ) in metrics
        assert (
            'conea_monitor_verifications_total{policy="tighten-rate-limit",result="recovered"} 1.0'
        ) in metrics


def test_alert_firing_again_within_the_delay_cancels_the_revert(
    tmp_path: Path, emu: kube_thread.ThreadedEmulator
) -> None:
    slow_revert = RATE_LIMIT.replace("after: 1s", "after: 1h")
    with harness(tmp_path, slow_revert, emulator=emu) as h:
        h.post(alert("HighLoad", "f00d0002"))
        h.wait_execution("f00d0002", "succeeded")
        h.post(alert("HighLoad", "f00d0002", status="resolved"))
        wait_for(lambda: ("revert", "scheduled") in h.audit_of("f00d0002"), 10, "scheduled")
        # The same alert fires again (a new episode): the temporary change stays.
        h.post(alert("HighLoad", "f00d0002", starts="2026-11-28T15:10:00Z"))
        wait_for(lambda: ("revert", "cancelled") in h.audit_of("f00d0002"), 10, "cancelled")
        first = [
            e for e in h.executions(fingerprint="f00d0002") if e["revert_state"] == "cancelled"
        ]
        assert len(first) == 1
        assert h.env()["RATE_LIMIT_PER_MINUTE"] == "100"


def test_rehearsal_plans_records_and_verifies_but_changes_nothing(
    tmp_path: Path, emu: kube_thread.ThreadedEmulator
) -> None:
    with harness(tmp_path, RATE_LIMIT, emulator=emu, automation={"mode": "rehearsal"}) as h:
        h.post(alert("HighLoad", "f00d0003"))
        execution = h.wait_execution("f00d0003", "rehearsed")
        assert (execution["dry_run"], execution["mode"]) == (True, "rehearsal")
        assert "RATE_LIMIT_PER_MINUTE" not in h.env()
        assert execution["actions"][0]["plan"]["changes"][0]["after"] == "100"
        assert h.audit_of("f00d0003")[:3] == [
            ("decision", "rehearse"),
            ("plan", "kubernetes.set_env"),
            ("finish", "rehearsed"),  # the move running -> rehearsed, with its own record
        ]
        # A rehearsal is verified as a live step is: would this step have been enough?
        assert execution["verify_state"] == "pending"
