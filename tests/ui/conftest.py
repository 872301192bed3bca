"""The console against a real store (SQLite and PostgreSQL), filled by the real engine:
the app runs in the test's event loop with its lifespan, alerts arrive through the
webhook, and the pages are read with httpx."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from monitor.app import create_app
from monitor.runtime import Runtime
from monitor.settings import Settings
from tests.support import service as svc

POLICIES = """
policies:
  - name: restart-api
    description: restart the API when it errors
    match: ['alertname="HighErrorRate"']
    target: {kind: Deployment, namespace: production, name: "{{ labels.deployment }}"}
    steps:
      - [{action: log, with: {message: "would restart {{ labels.deployment }}"}}]
    cooldown: 0s
  - name: scale-queue
    match: ['alertname="QueueBacklog"']
    target: {kind: Deployment, namespace: production, name: "{{ labels.deployment }}"}
    approval: required
    steps:
      - [{action: log, with: {message: "would scale {{ labels.deployment }}"}}]
    cooldown: 0s
  - name: slow-burn
    match: ['alertname="SlowBurn"']
    target: {kind: Deployment, namespace: production, name: "{{ labels.deployment }}"}
    for_at_least: 1000d
    steps:
      - [{action: log, with: {message: "burning"}}]
"""

STARTS = "2026-11-29T03:00:00Z"


def alert(
    name: str, fingerprint: str, deployment: str = "conea-api", **more: Any
) -> dict[str, Any]:
    return {
        "status": more.pop("status", "firing"),
        "labels": {"alertname": name, "namespace": "production", "deployment": deployment},
        "annotations": {"summary": f"{name} on {deployment}", "runbook": "https://runbooks/x"},
        "startsAt": STARTS,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=rate",
        "fingerprint": fingerprint,
        **more,
    }


def notification(*alerts: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "receiver": "conea",
            "status": "firing",
            "alerts": list(alerts),
            "groupLabels": {},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "version": "4",
            "groupKey": "{}:{}",
            "truncatedAlerts": 0,
        }
    ).encode()


@dataclass
class Console:
    app: FastAPI
    client: httpx.AsyncClient
    token: str

    @property
    def rt(self) -> Runtime:
        rt: Runtime = self.app.state.runtime
        return rt

    async def post_alerts(self, *alerts: dict[str, Any]) -> None:
        answer = await self.client.post(
            "/webhook/alertmanager",
            content=notification(*alerts),
            headers={"content-type": "application/json"},
        )
        assert answer.status_code == 200, answer.text

    async def until(self, check: Callable[[], Any], what: str) -> Any:
        """Wait for the engine's consumer (it decides in the background) to get there."""
        for _ in range(400):
            found = await check()
            if found:
                return found
            await asyncio.sleep(0.025)
        raise AssertionError(f"timed out waiting for {what}")

    async def executions(self, **params: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = (
            await self.client.get("/api/v1/executions", params=params)
        ).json()["items"]
        return items

    async def settled(self, count: int) -> list[dict[str, Any]]:
        """The executions, once ``count`` of them exist and none is still running."""

        async def done() -> list[dict[str, Any]] | None:
            rows = await self.executions()
            ok = len(rows) >= count and all(r["state"] not in ("running", "deferred") for r in rows)
            return rows if ok else None

        found: list[dict[str, Any]] = await self.until(done, f"{count} executions")
        return found

    async def csrf(self, path: str = "/ui/", **kwargs: Any) -> str:
        page = await self.client.get(path, **kwargs)
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found, page.text
        return found.group(1)


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return svc.store_url(request, tmp_path, "conea_ui")


@pytest.fixture
async def console(store_url: str, tmp_path: Path) -> AsyncIterator[Console]:
    policies = tmp_path / "policies.yaml"
    policies.write_text(POLICIES)
    settings = Settings(
        data_dir=tmp_path / "data",
        policies=[policies],
        store={"url": store_url},
        kubernetes={"mode": "none"},
        automation={"mode": "live"},
        public_url="http://conea.test",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://conea.test") as client:
            token = app.state.runtime.auth.operator.decode()
            yield Console(app, client, token)
