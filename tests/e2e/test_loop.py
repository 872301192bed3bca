"""The whole loop as production runs it, on real Prometheus and Alertmanager.

The demo API's error ratio rises -> Prometheus (shipped rules, shortened) fires
HighErrorRate -> Alertmanager posts to the webhook with a Bearer token from a file ->
the service scales the Deployment through its HPA in the emulator -> verification
through Prometheus -> the alert resolves -> the change is reverted. And: a probe of the
demo's health endpoint fails -> ProbeTargetDown -> rolling restart -> still down ->
the ladder escalates -> the on-call receiver gets the page.

Policies: the bundled ``high-error-rate`` and ``restart-unresponsive-api``, with durations
of seconds (``demo/shorten.py``).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from demo import stack as stack_mod
from tests.engine.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def kinds(audit: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(a["kind"], a["outcome"]) for a in audit]


def report_latency(
    s: stack_mod.Stack,
    execution: dict[str, Any],
    alertname: str,
    request: pytest.FixtureRequest,
) -> float:
    """Print and record the time from the alert firing in Prometheus (the startsAt
    Prometheus gave the alert) to the Kubernetes write (the audit record of the execute)."""
    [write] = [a for a in s.audit(fingerprint=execution["fingerprint"]) if a["kind"] == "execute"]
    fired = stack_mod.parse_time(execution["starts_at"])
    written = stack_mod.parse_time(write["at"])
    seconds = (written - fired).total_seconds()
    line = (
        f"{alertname}: fired in Prometheus at {fired.time()}, Kubernetes written at "
        f"{written.time()}: {seconds:.2f}s from firing to the write"
    )
    print(f"\n{line}")
    # In the JUnit XML (properties) and in pytest's terminal summary (tests/e2e/conftest.py).
    request.node.user_properties.append(
        (f"{alertname}_firing_to_kubernetes_write_seconds", round(seconds, 3))
    )
    return seconds


def test_error_rate_scales_through_the_hpa_verifies_and_reverts(
    e2e: stack_mod.Stack, request: pytest.FixtureRequest
) -> None:
    s = e2e
    assert s.hpa()["spec"]["minReplicas"] == 4
    assert not s.executions(alertname="HighErrorRate")

    s.demo.set(error_ratio=0.5)
    execution = wait_for(
        lambda: [e for e in s.executions(alertname="HighErrorRate") if e["state"] == "succeeded"],
        45,
        "HighErrorRate to be acted on",
    )[0]
    assert execution["policy"] == "high-error-rate"
    assert execution["target_key"] == "Deployment/production/conea-api"
    # Through the HPA: minReplicas raised by 50%, spec.replicas left to the HPA.
    assert s.hpa()["spec"]["minReplicas"] == 6
    assert s.deployment()["spec"]["replicas"] == 4

    # The alert the service acted on is the one Prometheus fired, labelled by the scrape.
    assert execution["labels"]["service"] == "conea-api"
    assert execution["labels"]["namespace"] == "production"
    [firing] = [a for a in s.prometheus_alerts("HighErrorRate") if a["state"] == "firing"]
    active = stack_mod.parse_time(firing["activeAt"])
    fired = stack_mod.parse_time(execution["starts_at"])
    assert 1.5 <= (fired - active).total_seconds() <= 10  # pending for `for: 2s`, then fired
    seconds = report_latency(s, execution, "HighErrorRate", request)
    assert 0 <= seconds < 15

    fingerprint = execution["fingerprint"]
    trail = kinds(s.audit(fingerprint=fingerprint))
    assert trail[:3] == [
        ("decision", "execute"),
        ("plan", "kubernetes.scale"),
        ("execute", "succeeded"),
    ]
    plan = execution["actions"][0]["plan"]["summary"]
    assert plan == "scale production/conea-api 4 -> 6 via HPA conea-api minReplicas 4 -> 6"

    # A repeat: the exact notification Alertmanager sent, delivered again, changes nothing.
    [sent, *_] = wait_for(
        lambda: s.posted_by_alertmanager("HighErrorRate", "firing"), 10, "the copy"
    )
    again = s.service.post(sent.body, headers={"authorization": f"Bearer {stack_mod.TOKEN}"})
    assert again.status_code == 200, again.text
    assert again.json()["repeats"] == again.json()["alerts"] >= 1
    # Without the token Alertmanager's credentials file provides, the webhook refuses.
    assert s.service.post(sent.body).status_code == 401
    assert len(s.executions(alertname="HighErrorRate")) == 1
    assert kinds(s.audit(fingerprint=fingerprint))[:3] == trail[:3]
    assert [k for k in kinds(s.audit(fingerprint=fingerprint)) if k[0] == "execute"] == [
        ("execute", "succeeded")
    ]
    assert s.hpa()["spec"]["minReplicas"] == 6

    # The new pods take the load: errors stop, Prometheus says so before the alert resolves.
    s.demo.set(error_ratio=0.0)
    verified = wait_for(
        lambda: [
            e for e in s.executions(fingerprint=fingerprint) if e["verify_state"] != "pending"
        ],
        30,
        "verification",
    )[0]
    assert verified["verify_state"] == "recovered"
    assert "returns no series" in verified["verify_detail"]
    assert 'status=~"5.."' in verified["verify_detail"]

    # Alertmanager sends the resolution; after the stabilisation delay the HPA is restored.
    done = wait_for(
        lambda: [e for e in s.executions(fingerprint=fingerprint) if e["revert_state"] == "done"],
        45,
        "the revert",
    )[0]
    assert s.posted_by_alertmanager("HighErrorRate", "resolved")
    assert s.hpa()["spec"]["minReplicas"] == 4
    assert done["id"] == execution["id"]
    trail = kinds(s.audit(fingerprint=fingerprint))
    assert trail[3:] == [
        ("finish", "succeeded"),  # running -> succeeded, verification pending
        ("verify", "recovered"),
        ("revert", "scheduled"),
        ("revert", "running"),
        ("revert", "succeeded"),  # the one action undone
        ("revert", "done"),  # the execution's revert machine: running -> done
    ]
    # Only step 1 ran: the notify step (page) was never needed.
    assert len(s.executions(alertname="HighErrorRate")) == 1
    assert not [p for p in s.pages() if p["alert"]["labels"]["alertname"] == "HighErrorRate"]
    metrics = s.service.get("/metrics").text
    assert (
        'conea_monitor_executions_total{action="kubernetes.scale",outcome="succeeded",'
        'policy="high-error-rate"} 1.0'
    ) in metrics
    assert 'conea_monitor_alerts_received_total{repeat="true",status="firing"}' in metrics


def test_probe_down_restart_does_not_help_escalates_to_a_page(
    e2e: stack_mod.Stack, request: pytest.FixtureRequest
) -> None:
    s = e2e
    # The probe goes through the service's own /probe, as Prometheus scrapes it.
    probe = httpx.get(
        f"{s.service.url}/probe",
        params={"target": f"{s.demo.url}/healthz", "module": "http_2xx"},
        timeout=10,
    )
    assert "probe_success 1" in probe.text
    template = s.deployment()["spec"]["template"]
    assert "kubectl.kubernetes.io/restartedAt" not in template["metadata"].get("annotations", {})

    s.demo.set(healthy=False)
    restart = wait_for(
        lambda: [
            e
            for e in s.executions(alertname="ProbeTargetDown")
            if e["step"] == 1 and e["state"] == "succeeded"
        ],
        45,
        "the restart",
    )[0]
    assert restart["policy"] == "restart-unresponsive-api"
    assert restart["labels"]["instance"] == f"{s.demo.url}/healthz"
    annotations = s.deployment()["spec"]["template"]["metadata"]["annotations"]
    assert "kubectl.kubernetes.io/restartedAt" in annotations
    report_latency(s, restart, "ProbeTargetDown", request)

    # The demo stays down after the restart: not recovered, the ladder goes to step 2.
    page = wait_for(
        lambda: [p for p in s.pages() if p["alert"]["labels"]["alertname"] == "ProbeTargetDown"],
        30,
        "the page",
    )[0]
    fingerprint = restart["fingerprint"]
    executions = s.executions(fingerprint=fingerprint)
    assert [(e["step"], e["state"]) for e in executions] == [(1, "succeeded"), (2, "succeeded")]
    assert executions[0]["verify_state"] == "not_recovered"
    # "Still firing?" comes from Alertmanager, which knows the exact alert.
    assert executions[0]["verify_detail"] == "Alertmanager reports the alert active"
    trail = kinds(s.audit(fingerprint=fingerprint))
    assert ("verify", "not_recovered") in trail
    assert ("escalate", "step 2") in trail
    assert trail.index(("escalate", "step 2")) < trail.index(("execute", "succeeded"), 3)

    assert page["title"] == f"{s.demo.url}/healthz still does not answer after a restart"
    assert page["policy"] == "restart-unresponsive-api"
    assert page["alert"]["status"] == "firing"
    # The page links to the execution's page in the console, which a person follows to
    # see what was tried.
    assert page["links"]["audit"] == f"{s.service.url}/ui/executions/{executions[1]['id']}"
    viewer = {"authorization": f"Bearer {stack_mod.VIEWER_TOKEN}"}
    linked = httpx.get(page["links"]["audit"], headers=viewer, timeout=10)
    assert linked.status_code == 200
    assert "restart-unresponsive-api, step 2 of 2" in linked.text
    # The page itself says what was tried and how it went.
    [tried] = page["history"]
    assert (tried["action"], tried["status"], tried["verification"]) == (
        "kubernetes.restart",
        "succeeded",
        "not_recovered",
    )
    assert tried["execution_id"] == str(executions[0]["id"])

    # Back up: the alert resolves and nothing more happens.
    s.demo.set(healthy=True)
    wait_for(lambda: s.posted_by_alertmanager("ProbeTargetDown", "resolved"), 30, "the resolution")
    assert len(s.executions(fingerprint=fingerprint)) == 2
    assert (
        len([p for p in s.pages() if p["alert"]["labels"]["alertname"] == "ProbeTargetDown"]) == 1
    )
