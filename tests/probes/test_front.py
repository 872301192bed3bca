"""The service's /probe is answered in front of FastAPI: its middleware and routing never
see a probe; other methods still get the router's 405, a bug is a 500 naming it, and the
query string is read as ``urllib.parse.parse_qsl`` reads it."""

from __future__ import annotations

import pathlib
import urllib.parse

import fastapi
import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from monitor.api import probe
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


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"&&",
        b"module",
        b"module=",
        b"=x",
        b"module=a&module=b",
        b"module=http_2xx&target=http%3A%2F%2F127.0.0.1%3A9115%2F-%2Fhealthy",
        b"target=a+b&module=x%2By",
        b"target=%ZZ&%E9=%C3%A9",
        b"target=\xe9\xff",
        b"a=b=c&d=e;f=g",
        b"a%3Db=c&+=+&%=%",
    ],
)
def test_the_query_is_read_as_parse_qsl_reads_it(raw: bytes) -> None:
    assert probe.parse_query(raw) == dict(urllib.parse.parse_qsl(raw.decode("latin-1")))
