"""POST /webhook/alertmanager is answered in front of FastAPI: its middleware and routing
never see a notification; other methods still get the router's 405, its 4xx answers are
unchanged, and a bug is a JSON 500 naming the exception, as the framework answered it."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator
from typing import Any

import fastapi
import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from monitor.app import create_app
from monitor.auth import Authenticator
from monitor.metrics import Metrics
from monitor.runtime import Runtime
from monitor.settings import Settings
from monitor.store import database, queries
from monitor.store.notifications import NotificationWriter
from tests.support import service as svc

PATH = "/webhook/alertmanager"
JSON = {"content-type": "application/json"}


class Seen:
    """An ASGI middleware that notes the paths it is given."""

    paths: list[str] = []

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            Seen.paths.append(scope["path"])
        await self.app(scope, receive, send)


@pytest.fixture
async def app(tmp_path: pathlib.Path) -> AsyncIterator[fastapi.FastAPI]:
    Seen.paths = []
    settings = Settings(data_dir=tmp_path, policies=[])
    app = create_app(settings)
    app.add_middleware(Seen)
    db = database.connect(settings.database_url)
    database.migrate(db)
    writer = NotificationWriter(db)
    writer.start()
    metrics: Metrics = app.state.metrics
    app.state.runtime = Runtime(settings, metrics, db, writer, Authenticator(settings))
    yield app
    writer.stop()
    db.dispose()


async def post(app: fastapi.FastAPI, body: bytes, method: str = "POST", **kw: Any) -> Any:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 4321))
    async with httpx.AsyncClient(transport=transport, base_url="http://conea") as client:
        return await client.request(method, PATH, content=body, **kw)


async def test_a_notification_never_reaches_the_middleware(app: fastapi.FastAPI) -> None:
    response = await post(app, svc.fixture_bytes("firing-group-of-3.json"), headers=JSON)
    assert response.status_code == 200
    assert response.json()["alerts"] == 3
    assert queries.count(app.state.runtime.db, "alerts") == 3
    assert Seen.paths == []
    value = app.state.metrics.registry.get_sample_value(
        "conea_monitor_webhooks_total", {"outcome": "accepted"}
    )
    assert value == 1.0


async def test_bad_input_is_answered_as_before(app: fastapi.FastAPI) -> None:
    response = await post(app, b"{", headers=JSON)
    assert response.status_code == 400
    assert response.json()["error"] == "body is not valid JSON"
    response = await post(app, b"{}", headers={"content-type": "text/plain"})
    assert response.status_code == 415
    assert response.json() == {"error": "content type must be application/json, got 'text/plain'"}
    assert Seen.paths == []


async def test_other_methods_are_the_routers_405(app: fastapi.FastAPI) -> None:
    response = await post(app, b"", method="GET")
    assert response.status_code == 405
    assert Seen.paths == [PATH]


async def test_a_bug_is_a_json_500_naming_the_exception(
    app: fastapi.FastAPI, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(app.state.runtime.writer, "submit", broken)
    response = await post(app, svc.fixture_bytes("firing-group-of-3.json"), headers=JSON)
    assert response.status_code == 500
    assert response.json() == {"error": "internal error (KeyError); see the service log"}
    assert "unhandled error on POST /webhook/alertmanager" in caplog.text
