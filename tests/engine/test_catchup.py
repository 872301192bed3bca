"""Resume's catch-up end to end, with a real Alertmanager: the alerts skipped during the
pause that still fire are decided again (once), the resolved ones are not."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.engine.conftest import Harness, alert, harness, wait_for
from tests.support import kube_thread
from tests.support import service as svc
from tests.support.services import Alertmanager, alertmanager_server

POLICIES = """
policies:
  - name: restart
    match: ['alertname="ApiDown"']
    target: {kind: Deployment, namespace: "{{ labels.namespace }}",
             name: "{{ labels.deployment }}"}
    steps: [[{action: kubernetes.restart}]]
    cooldown: 1h
"""
AM_CONFIG = "route: {receiver: none}\nreceivers: [{name: none}]\n"
STARTS = (datetime.now(UTC) - timedelta(minutes=10)).replace(microsecond=0)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """The service's ``store`` settings: its SQLite file, or a PostgreSQL database."""
    if request.param == "sqlite":
        return {}
    return {"store": {"url": svc.store_url(request, tmp_path, "conea_catchup")}}


@pytest.fixture
def am() -> Iterator[Alertmanager]:
    with alertmanager_server(AM_CONFIG) as server:
        yield server


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args], capture_output=True, text=True, timeout=120
    )


def labels(deployment: str) -> dict[str, str]:
    return {"alertname": "ApiDown", "namespace": "production", "deployment": deployment}


def am_post(am: Alertmanager, deployment: str, *, resolved: bool = False) -> None:
    """Tell Alertmanager the alert fires (or, with ``resolved``, that it ended)."""
    ends = datetime.now(UTC) + (timedelta(seconds=-1) if resolved else timedelta(hours=1))
    body = [
        {
            "labels": labels(deployment),
            "annotations": {"summary": f"ApiDown on {deployment}"},
            "startsAt": STARTS.isoformat(),
            "endsAt": ends.isoformat(),
            "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
        }
    ]
    assert httpx.post(f"{am.url}/api/v2/alerts", json=body, timeout=10).status_code == 200


def firing(am: Alertmanager, *deployments: str) -> dict[str, dict[str, Any]]:
    """The alerts as Alertmanager fingerprinted them, in the webhook's form."""
    for deployment in deployments:
        am_post(am, deployment)
    found = httpx.get(f"{am.url}/api/v2/alerts", timeout=10).json()
    by_name = {a["labels"]["deployment"]: a["fingerprint"] for a in found}
    return {
        d: alert("ApiDown", by_name[d], starts=STARTS.isoformat(), deployment=d)
        for d in deployments
    }


def skipped_paused(h: Harness, *alerts: dict[str, Any]) -> None:
    for a in alerts:
        fp: str = a["fingerprint"]

        def skipped(fp: str = fp) -> bool:
            return ("skip", "paused") in h.audit_of(fp)

        wait_for(skipped, 20, f"{fp} skipped")


def resolved(a: dict[str, Any]) -> dict[str, Any]:
    return {**a, "status": "resolved", "endsAt": datetime.now(UTC).isoformat()}


def test_resume_decides_again_the_alerts_skipped_during_the_pause_that_still_fire(
    tmp_path: Path, emu: kube_thread.ThreadedEmulator, am: Alertmanager, store: dict[str, Any]
) -> None:
    alerts = firing(am, "conea-api", "billing", "worker")
    api, billing, worker = alerts["conea-api"], alerts["billing"], alerts["worker"]
    with harness(tmp_path, POLICIES, emulator=emu, alertmanager_url=am.url, **store) as h:
        assert h.service.admin("/api/v1/pause", {"reason": "incident 42"}).status_code == 200
        h.post(api, billing, worker)
        skipped_paused(h, api, billing, worker)
        # billing resolved (Alertmanager and a resolved webhook say so); worker resolved
        # in Alertmanager only: the store still knows it as firing.
        am_post(am, "billing", resolved=True)
        am_post(am, "worker", resolved=True)
        h.post(resolved(billing))

        answer = h.service.admin("/api/v1/resume").json()
        assert answer == {
            "paused": False,
            "caught_up": 2,
            "message": "automation resumed; 2 alerts skipped during the pause are decided again",
        }
        h.wait_execution(api["fingerprint"], "succeeded")
        # worker: the "still firing?" check asks Alertmanager before acting.
        wait_for(lambda: ("skip", "stale") in h.audit_of(worker["fingerprint"]), 20, "stale")
        [stale] = [a for a in h.audit(fingerprint=worker["fingerprint"]) if a["outcome"] == "stale"]
        assert stale["message"] == "'restart': stale: Alertmanager no longer has the alert"

        assert len(h.executions(fingerprint=api["fingerprint"])) == 1
        assert h.executions(fingerprint=billing["fingerprint"]) == []
        assert h.executions(fingerprint=worker["fingerprint"]) == []
        [record] = [a for a in h.audit() if a["kind"] == "resume"]
        assert record["message"] == (
            "automation resumed by operator-token; "
            "2 alerts skipped during the pause are decided again"
        )

        # Nothing paused: a second resume queues nothing and says nothing of it.
        assert h.service.admin("/api/v1/resume").json() == {"paused": False}
        assert len(h.executions(fingerprint=api["fingerprint"])) == 1


def test_resume_no_catch_up_from_the_cli_acts_on_none(
    tmp_path: Path, emu: kube_thread.ThreadedEmulator, am: Alertmanager
) -> None:
    alerts = firing(am, "conea-api", "billing")
    api, billing = alerts["conea-api"], alerts["billing"]
    with harness(tmp_path, POLICIES, emulator=emu, alertmanager_url=am.url) as h:
        assert cli("pause", "--config", str(h.service.config)).returncode == 0
        h.post(api)
        skipped_paused(h, api)
        resumed = cli("resume", "--no-catch-up", "--config", str(h.service.config))
        assert resumed.stdout == (
            "automation resumed; 1 alert skipped during the pause is not decided again "
            "(catch-up off)\n"
        ), resumed.stderr
        # A new alert after the resume is decided; a catch-up would have come before it.
        h.post(billing)
        h.wait_execution(billing["fingerprint"], "succeeded")
        assert h.executions(fingerprint=api["fingerprint"]) == []


def test_resume_from_the_cli_queues_the_catch_up_for_the_service(
    tmp_path: Path, emu: kube_thread.ThreadedEmulator, am: Alertmanager
) -> None:
    api = firing(am, "conea-api")["conea-api"]
    with harness(tmp_path, POLICIES, emulator=emu, alertmanager_url=am.url) as h:
        assert cli("pause", "--config", str(h.service.config)).returncode == 0
        h.post(api)
        skipped_paused(h, api)
        resumed = cli("resume", "--config", str(h.service.config))
        assert resumed.stdout == (
            "automation resumed; 1 alert skipped during the pause is decided again\n"
        ), resumed.stderr
        h.wait_execution(api["fingerprint"], "succeeded")


@pytest.mark.parametrize("store", ["postgres"], indirect=True)
def test_two_replicas_resuming_at_once_queue_one_catch_up(
    tmp_path: Path, emu: kube_thread.ThreadedEmulator, am: Alertmanager, store: dict[str, Any]
) -> None:
    api = firing(am, "conea-api")["conea-api"]
    with harness(tmp_path, POLICIES, emulator=emu, alertmanager_url=am.url, **store) as h:
        other = svc.start(h.service.config)
        try:
            assert h.service.admin("/api/v1/pause").status_code == 200
            h.post(api)
            skipped_paused(h, api)
            answers: list[dict[str, Any]] = []
            gate = threading.Barrier(2)

            def resume(replica: svc.Service) -> None:
                gate.wait()
                answers.append(replica.admin("/api/v1/resume").json())

            threads = [threading.Thread(target=resume, args=(s,)) for s in (h.service, other)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert sorted(a.get("caught_up", 0) for a in answers) == [0, 1], answers
            h.wait_execution(api["fingerprint"], "succeeded")
            assert len(h.executions(fingerprint=api["fingerprint"])) == 1
        finally:
            svc.stop(other.process)
