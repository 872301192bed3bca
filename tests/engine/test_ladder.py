"""Verification against a real Prometheus, escalation, restarts, and two replicas."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from tests.engine.conftest import Harness, alert, harness, notification, wait_for
from tests.support import kube_thread
from tests.support import service as svc
from tests.support.services import Postgres, free_port, prometheus_server

LADDER = """
policies:
  - name: ladder
    match: ['alertname="ErrorsHigh"']
    target: {kind: Deployment, namespace: production, name: conea-api}
    steps:
      - [{action: kubernetes.set_env, with: {env: {FIRST: "1"}}}]
      - [{action: kubernetes.set_env, with: {env: {SECOND: "1"}}}]
    cooldown: 0s
    verify: {promql: 'demo_bad{job="demo"} > 0', window: 3s, interval: 500ms}
"""


@pytest.fixture
def demo_metric() -> Iterator[tuple[Gauge, int]]:
    registry = CollectorRegistry()
    gauge = Gauge("demo_bad", "1 while the demo is broken", registry=registry)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        yield gauge, port
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_not_recovered_escalates_then_recovers(
    tmp_path: Path, emu: kube_thread.ThreadedEmulator, demo_metric: tuple[Gauge, int]
) -> None:
    gauge, port = demo_metric
    gauge.set(1)
    config = (
        "global: {scrape_interval: 500ms, evaluation_interval: 500ms}\n"
        "rule_files: [rules.yml]\n"
        "scrape_configs: [{job_name: demo, static_configs: "
        f"[{{targets: ['127.0.0.1:{port}']}}]}}]\n"
    )
    # The alert the service is told about is a real one: Prometheus has it in ALERTS,
    # which the engine asks before acting ("still firing?").
    rules = (
        "groups: [{name: demo, rules: [{alert: ErrorsHigh, expr: demo_bad > 0, "
        "labels: {namespace: production, deployment: conea-api}}]}]\n"
    )
    with prometheus_server(config, {"rules.yml": rules}) as prom:
        import httpx

        wait_for(
            lambda: httpx.get(f"{prom.url}/api/v1/query", params={"query": "ALERTS"}).json()[
                "data"
            ]["result"],
            20,
            "the alert to fire in Prometheus",
        )
        with harness(tmp_path, LADDER, emulator=emu, prometheus_url=prom.url) as h:
            h.post(alert("ErrorsHigh", "e5c0", job="demo", instance=f"127.0.0.1:{port}"))
            first = h.wait_execution("e5c0", "succeeded")
            assert h.env()["FIRST"] == "1"
            # demo_bad stays 1: after the 3s window, not recovered -> step 2.
            second = h.wait_execution("e5c0", "succeeded", step=2, timeout=20)
            assert h.env()["SECOND"] == "1"
            first = next(e for e in h.executions(fingerprint="e5c0") if e["step"] == 1)
            assert first["verify_state"] == "not_recovered"
            assert "still returns series" in first["verify_detail"]
            kinds = h.audit_of("e5c0")
            assert ("verify", "not_recovered") in kinds and ("escalate", "step 2") in kinds
            # The demo recovers: step 2's verification says so.
            gauge.set(0)
            wait_for(
                lambda: (
                    next(e for e in h.executions(fingerprint="e5c0") if e["step"] == 2)[
                        "verify_state"
                    ]
                    == "recovered"
                ),
                20,
                "step 2 verified",
            )
            assert second["id"] != first["id"]
            metrics = h.service.get("/metrics").text
            assert 'conea_monitor_escalations_total{policy="ladder"} 1.0' in metrics


RESTART = """
policies:
  - name: ladder
    match: ['alertname="ErrorsHigh"']
    target: {kind: Deployment, namespace: production, name: conea-api}
    steps:
      - [{action: kubernetes.set_env, with: {env: {FIRST: "1"}}}]
      - [{action: kubernetes.set_env, with: {env: {SECOND: "1"}}}]
    cooldown: 0s
    verify: {window: 4s, interval: 500ms}
"""


def test_pending_verification_survives_a_crash(
    tmp_path: Path, emu: kube_thread.ThreadedEmulator
) -> None:
    with harness(tmp_path, RESTART, emulator=emu) as h:
        h.post(alert("ErrorsHigh", "c4a5"))
        h.wait_execution("c4a5", "succeeded")
        assert h.executions(fingerprint="c4a5")[0]["verify_state"] == "pending"
        h.service.kill()  # SIGKILL: no shutdown, timers only in the store
        restarted = svc.start(h.service.config)
        try:
            again = Harness(restarted, emu, tmp_path)
            # No webhook arrives: the verification, then the escalation, come from the store.
            again.wait_execution("c4a5", "succeeded", step=2, timeout=20)
            assert again.env()["SECOND"] == "1"
            first = next(e for e in again.executions(fingerprint="c4a5") if e["step"] == 1)
            assert first["verify_state"] == "not_recovered"
        finally:
            from tests.support.services import stop

            stop(restarted.process)


def test_two_replicas_on_one_postgresql_act_once(
    tmp_path: Path, emu: kube_thread.ThreadedEmulator, postgres: Postgres
) -> None:
    url = postgres.url(postgres.create_database("conea_replicas"))
    # for_at_least makes every decision a deferred one that both replicas' timers race for.
    policies = (
        RESTART.replace("window: 4s", "window: 1h")
        .replace("name: conea-api}", 'name: "{{ labels.deployment }}"}')
        .replace("cooldown: 0s", "cooldown: 0s\n    for_at_least: 2s")
    )
    from tests.support.kube_objects import deployment

    for i in range(8):
        emu.add(deployment(name=f"d{i}"))
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_dir.mkdir()
    b_dir.mkdir()
    with (
        harness(a_dir, policies, emulator=emu, store={"url": url}) as a,
        harness(b_dir, policies, emulator=emu, store={"url": url}) as b,
    ):
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        bodies = [
            notification(alert("ErrorsHigh", f"d0{i:02d}", deployment=f"d{i}", starts=now))
            for i in range(8)
        ]
        for body in bodies:
            barrier = threading.Barrier(2)

            def send(h: Harness, payload: bytes = body, gate: threading.Barrier = barrier) -> None:
                gate.wait()
                assert h.service.post(payload).status_code == 200

            threads = [threading.Thread(target=send, args=(h,)) for h in (a, b)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        for i in range(8):
            a.wait_execution(f"d0{i:02d}", "succeeded")
        executions = a.executions()
        assert len(executions) == 8  # one per alert, whichever replica won it
        owners = {e["owner"] for e in executions}
        executes = [x for x in a.audit() if x["kind"] == "execute"]
        assert len(executes) == 8
        # Both see the same store.
        assert {(e["id"], e["fingerprint"]) for e in b.executions()} == {
            (e["id"], e["fingerprint"]) for e in executions
        }
        # One deferral per alert (the store saw the second delivery as a repeat), then one
        # decision per alert although both replicas' timers went for each of them.
        assert len([x for x in a.audit() if x["kind"] == "defer"]) == 8
        assert len([x for x in a.audit() if x["kind"] == "decision"]) == 8
        assert len(owners) in (1, 2)
        for i in range(8):
            env = emu.read("Deployment", "production", f"d{i}")["spec"]["template"]["spec"]
            assert {"name": "FIRST", "value": "1"} in env["containers"][0]["env"]
