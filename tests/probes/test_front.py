"""The service's /probe is answered in front of FastAPI: its middleware and routing never
see a probe; other methods still get the router's 405, and a bug is a 500 naming it."""

from __future__ import annotations

import pathlib

import fastapi
import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from monitor.app import create_app
from monitor.settings import Settings


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
def app(tmp_path: pathlib.Path) -> fastapi.FastAPI:
    Seen.paths = []
    app = create_app(Settings(data_dir=tmp_path, policies=[]))
    app.add_middleware(Seen)
    return app


async def request(app: fastapi.FastAPI, method: str, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://conea") as client:
        return await client.request(method, path)


async def test_a_probe_never_reaches_the_middleware(app: fastapi.FastAPI) -> None:
    response = await request(app, "GET", "/probe?module=nope&target=127.0.0.1:1")
    assert response.status_code == 400
    assert response.text.startswith("unknown module 'nope' (known: ")
    assert Seen.paths == []
    await request(app, "GET", "/nothing-here")
    assert Seen.paths == ["/nothing-here"]


async def test_other_methods_on_probe_are_the_routers_405(app: fastapi.FastAPI) -> None:
    response = await request(app, "POST", "/probe?module=http_2xx&target=127.0.0.1:1")
    assert response.status_code == 405
    assert Seen.paths == ["/probe"]


async def test_a_bug_is_a_500_naming_the_exception(
    app: fastapi.FastAPI, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(app.state.probe_service, "probe", broken)
    response = await request(app, "GET", "/probe?module=http_2xx&target=127.0.0.1:1")
    assert response.status_code == 500
    assert response.text == "internal error (KeyError); see the service log\n"
    assert "unhandled error on /probe" in caplog.text
