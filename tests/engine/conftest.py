"""A running service with its own policies, against the Kubernetes emulator."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import kube_thread, paging
from tests.support import service as svc
from tests.support.kube_objects import deployment

STARTS = "2026-11-28T14:26:51.765Z"


def alert(
    name: str, fingerprint: str, *, status: str = "firing", starts: str = STARTS, **labels: str
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {
            "alertname": name,
            "namespace": "production",
            "deployment": "conea-api",
            **labels,
        },
        "annotations": {"summary": f"{name} on conea-api"},
        "startsAt": starts,
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-28T15:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
        "fingerprint": fingerprint,
    }


def notification(*alerts: dict[str, Any]) -> bytes:
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return json.dumps(
        {
            "receiver": "conea",
            "status": status,
            "alerts": list(alerts),
            "groupLabels": {"alertname": alerts[0]["labels"]["alertname"]},
            "commonLabels": {"alertname": alerts[0]["labels"]["alertname"]},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "version": "4",
            "groupKey": '{}:{alertname="x"}',
            "truncatedAlerts": 0,
        }
    ).encode()


def wait_for(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Harness:
    service: svc.Service
    emulator: kube_thread.ThreadedEmulator
    directory: Path

    def post(self, *alerts: dict[str, Any]) -> None:
        response = self.service.post(notification(*alerts))
        assert response.status_code == 200, response.text

    def executions(self, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.service.get(
            "/api/v1/executions", params={"limit": 1000, **params}
        ).json()["items"]
        return items

    def audit(self, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.service.get(
            "/api/v1/audit", params={"limit": 1000, **params}
        ).json()["items"]
        return list(reversed(items))  # oldest first

    def audit_of(self, fingerprint: str) -> list[tuple[str, str | None]]:
        return [(a["kind"], a["outcome"]) for a in self.audit(fingerprint=fingerprint)]

    def wait_execution(
        self, fingerprint: str, state: str, step: int = 1, timeout: float = 20.0
    ) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            for e in self.executions(fingerprint=fingerprint):
                if e["step"] == step and e["state"] == state:
                    return e
            return None

        result: dict[str, Any] = wait_for(
            found, timeout, f"execution of {fingerprint} step {step} in state {state}"
        )
        return result

    def env(self, name: str = "conea-api") -> dict[str, str]:
        obj = self.emulator.read("Deployment", "production", name)
        container = obj["spec"]["template"]["spec"]["containers"][0]
        return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def write_policies(directory: Path, text: str) -> Path:
    folder = directory / "remediations"
    folder.mkdir(exist_ok=True)
    (folder / "test.yaml").write_text(text)
    return folder


@contextlib.contextmanager
def harness(
    directory: Path,
    policies: str,
    *,
    emulator: kube_thread.ThreadedEmulator,
    env: dict[str, str] | None = None,
    **settings: Any,
) -> Iterator[Harness]:
    folder = write_policies(directory, policies)
    automation = settings.pop("automation", {})
    if "mode" not in automation and "dry_run" not in automation:
        automation = {"mode": "live", **automation}
    config = svc.write_config(
        directory,
        policies=[str(folder)],
        verify_sweep_seconds=0.5,
        kubernetes={"mode": "kubeconfig", "kubeconfig": str(emulator.kubeconfig(directory))},
        automation=automation,
        **settings,
    )
    with svc.running(config, env) as service:
        yield Harness(service, emulator, directory)


@pytest.fixture
def emu() -> Iterator[kube_thread.ThreadedEmulator]:
    with kube_thread.emulator() as emulator:
        emulator.add(deployment())
        emulator.add(deployment(name="billing"))
        emulator.add(deployment(name="worker"))
        yield emulator


@pytest.fixture(params=["sqlite"])
async def world(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[paging.World]:
    """Engines paging a PagerDuty (tests.support.paging) on SQLite; parametrised
    ``indirect`` with ``postgres``, on PostgreSQL."""
    async with paging.world(request, tmp_path, monkeypatch) as made:
        yield made
