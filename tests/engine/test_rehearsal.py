"""Rehearsal: every step planned, recorded and verified, nothing applied, nothing of live
mode spent (cooldown, budget, failure metrics), globally, per policy and per step."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import Gauge

from tests.engine.conftest import alert, harness, notification, wait_for, write_policies
from tests.engine.test_ladder import demo_metric  # noqa: F401 - a fixture
from tests.support import kube_thread
from tests.support import service as svc
from tests.support.services import prometheus_server

LADDER = """
policies:
  - name: ladder
    dry_run: true
    match: ['alertname="ErrorsHigh"']
    target: {kind: Deployment, namespace: production, name: conea-api}
    steps:
      - [{action: kubernetes.set_env, with: {env: {FIRST: "1"}}}]
      - [{action: kubernetes.set_env, with: {env: {SECOND: "1"}}}]
      - [{action: kubernetes.restart}]
    cooldown: 1h
    budget: {attempts: 1, window: 1h}
    verify: {promql: 'demo_bad{job="demo"} > 0', window: 2s, interval: 500ms}
  - name: live-one
    match: ['alertname="LatencyHigh"']
    target: {kind: Deployment, namespace: production, name: conea-api}
    steps:
      - [{action: kubernetes.set_env, with: {env: {LIVE: "1"}}}]
    cooldown: 1h
"""


def objects(emu: kube_thread.ThreadedEmulator) -> Any:
    return emu.call(lambda e: copy.deepcopy(dict(e.objects)))


def test_a_rehearsed_ladder_walks_every_step_verified_by_prometheus_and_spends_nothing(
    tmp_path: Path,
    emu: kube_thread.ThreadedEmulator,
    demo_metric: tuple[Gauge, int],  # noqa: F811
) -> None:
    gauge, port = demo_metric
    gauge.set(1)
    config = (
        "global: {scrape_interval: 500ms, evaluation_interval: 500ms}\n"
        "rule_files: [rules.yml]\n"
        "scrape_configs: [{job_name: demo, static_configs: "
        f"[{{targets: ['127.0.0.1:{port}']}}]}}]\n"
    )
    rules = (
        "groups: [{name: demo, rules: ["
        "{alert: ErrorsHigh, expr: demo_bad > 0, labels: {namespace: production, "
        "deployment: conea-api}}, "
        "{alert: LatencyHigh, expr: demo_bad > 0, labels: {namespace: production, "
        "deployment: conea-api}}]}]\n"
    )
    with prometheus_server(config, {"rules.yml": rules}) as prom:
        wait_for(
            lambda: (
                len(
                    httpx.get(f"{prom.url}/api/v1/query", params={"query": "ALERTS"}).json()[
                        "data"
                    ]["result"]
                )
                == 2
            ),
            20,
            "both alerts to fire in Prometheus",
        )
        before = objects(emu)
        with harness(tmp_path, LADDER, emulator=emu, prometheus_url=prom.url) as h:
            h.post(alert("ErrorsHigh", "e5c1", job="demo", instance=f"127.0.0.1:{port}"))
            # demo_bad stays 1: each rehearsed step's verification says "not recovered"
            # after its 2s window, and the rehearsal goes on to the next step.
            third = h.wait_execution("e5c1", "rehearsed", step=3, timeout=30)
            wait_for(
                lambda: ("escalate", "exhausted") in h.audit_of("e5c1"), 20, "the ladder's end"
            )
            rows = sorted(h.executions(fingerprint="e5c1"), key=lambda e: e["step"])
            assert [(e["step"], e["state"], e["mode"]) for e in rows] == [
                (1, "rehearsed", "rehearsal"),
                (2, "rehearsed", "rehearsal"),
                (3, "rehearsed", "rehearsal"),
            ]
            assert [e["verify_state"] for e in rows[:2]] == ["not_recovered", "not_recovered"]
            assert third["actions"][0]["plan"]["summary"]
            kinds = h.audit_of("e5c1")
            assert kinds.count(("decision", "rehearse")) == 3
            escalations = [
                a["message"] for a in h.audit(fingerprint="e5c1") if a["kind"] == "escalate"
            ]
            assert "would escalate to step 2" in escalations[0]
            assert "a person would have to take over" in escalations[-1]
            # Nothing was written to the cluster.
            assert objects(emu) == before
            # The rehearsal spent no live cooldown: a live policy on the same target acts
            # at once although the rehearsed ladder's cooldown is an hour.
            h.post(alert("LatencyHigh", "1a7e", job="demo", instance=f"127.0.0.1:{port}"))
            live = h.wait_execution("1a7e", "succeeded")
            assert (live["mode"], h.env()["LIVE"]) == ("live", "1")
            assert "FIRST" not in h.env() and "SECOND" not in h.env()
            metrics = h.service.get("/metrics").text
            assert (
                'conea_monitor_executions_total{action="kubernetes.set_env",outcome="rehearsed",'
                'policy="ladder"} 2.0' in metrics
            )
            assert 'outcome="failed"' not in metrics
            assert 'conea_monitor_escalations_total{policy="ladder"}' not in metrics
            assert 'conea_monitor_decisions_total{outcome="rehearse",policy="ladder"} 3.0' in (
                metrics
            )


PER_STEP = """
policies:
  - name: mixed
    match: ['alertname="ErrorsHigh"']
    target: {kind: Deployment, namespace: production, name: conea-api}
    steps:
      - [{action: kubernetes.set_env, with: {env: {FIRST: "1"}}}]
      - actions: [{action: kubernetes.set_env, with: {env: {SECOND: "1"}}}]
        dry_run: true
      - [{action: kubernetes.set_env, with: {env: {THIRD: "1"}}}]
    cooldown: 0s
    verify: {window: 1s, interval: 250ms}
"""


def test_one_rehearsed_step_in_a_live_ladder(
    tmp_path: Path, emu: kube_thread.ThreadedEmulator
) -> None:
    # No Alertmanager or Prometheus: verification cannot tell, so each window ends
    # "not recovered" and the ladder goes on.
    with harness(tmp_path, PER_STEP, emulator=emu) as h:
        h.post(alert("ErrorsHigh", "5e9a"))
        h.wait_execution("5e9a", "succeeded", step=3, timeout=30)
        rows = sorted(h.executions(fingerprint="5e9a"), key=lambda e: e["step"])
        assert [(e["state"], e["mode"]) for e in rows] == [
            ("succeeded", "live"),
            ("rehearsed", "rehearsal"),
            ("succeeded", "live"),
        ]
        env = h.env()
        assert (env.get("FIRST"), env.get("SECOND"), env.get("THIRD")) == ("1", None, "1")


NO_CREDENTIALS = """
policies:
  - name: restart
    match: ['alertname="ApiDown"']
    target: {kind: Deployment, namespace: production, name: conea-api}
    steps:
      - [{action: kubernetes.restart}]
      - [{action: log, with: {message: "page someone"}}]
    verify: {window: 1h}
"""


def test_without_credentials_the_rehearsal_records_what_it_would_do_not_a_failure(
    tmp_path: Path,
) -> None:
    # ./scripts/run's default: no Kubernetes credentials and no mode set -> rehearsal.
    folder = write_policies(tmp_path, NO_CREDENTIALS)
    config = svc.write_config(tmp_path, policies=[str(folder)], verify_sweep_seconds=0.5)
    with svc.running(config) as service:
        assert service.get("/api/v1/status").json()["mode"] == "rehearsal"
        assert service.post(notification(alert("ApiDown", "0c0d"))).status_code == 200

        def execution() -> dict[str, Any] | None:
            items = service.get("/api/v1/executions", params={"fingerprint": "0c0d"}).json()
            done = [e for e in items["items"] if e["state"] != "running"]
            return done[0] if done else None

        row = wait_for(execution, 20, "the rehearsed execution")
        assert (row["state"], row["mode"], row["error"]) == ("rehearsed", "rehearsal", None)
        summary = row["actions"][0]["plan"]["summary"]
        assert summary.startswith("would run kubernetes.restart")
        assert "no Kubernetes credentials" in summary
        # Verified like a live step (the window is an hour): no escalation to the page.
        assert row["verify_state"] == "pending"
        steps = service.get("/api/v1/executions", params={"fingerprint": "0c0d"}).json()
        assert [e["step"] for e in steps["items"]] == [1]
        metrics = service.get("/metrics").text
        assert 'outcome="failed"' not in metrics
