"""Fixtures of the action tests: a database with two login roles, and action contexts."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from aiohttp import web

from monitor import targets
from monitor.actions import registry
from monitor.actions import runner as action_runner
from tests.support import services

APP_ROLE = "conea_app_test"
PROTECTED_ROLE = "conea_batch_test"
ROLE_PASSWORD = "role-pass-1234"


@pytest.fixture(scope="session")
def actions_db(postgres: services.Postgres) -> Iterator[str]:
    """A database for the action tests; two non-superuser roles may log in to it."""
    name = postgres.create_database("conea_actions")
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        for role in (APP_ROLE, PROTECTED_ROLE):
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            if not exists:
                conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{ROLE_PASSWORD}'")
    yield name


@pytest.fixture
def pg_target(
    postgres: services.Postgres, actions_db: str, monkeypatch: pytest.MonkeyPatch
) -> targets.PostgresTarget:
    monkeypatch.setenv("CONEA_TEST_PG_PASSWORD", postgres.password)
    return targets.PostgresTarget(
        host=postgres.host,
        port=postgres.port,
        dbname=actions_db,
        user=postgres.user,
        password_env="CONEA_TEST_PG_PASSWORD",
        connect_timeout=5,
    )


@pytest.fixture
def pg_ctx(pg_target: targets.PostgresTarget) -> registry.ActionContext:
    return registry.ActionContext(
        alert=None, target={}, services=registry.Services(postgres={"db": pg_target})
    )


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: Any = field(default_factory=lambda: {"success": True, "errors": []})
    headers: dict[str, str] = field(default_factory=dict)
    echo_auth: bool = False  # put the request's Authorization header in the body


@dataclass
class FakeApi:
    """A real HTTP server on 127.0.0.1 that records requests and plays scripted replies."""

    base: str = ""
    received: list[Received] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base + path

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.received.append(
            Received(request.method, request.path_qs, dict(request.headers), await request.read())
        )
        reply = self.replies.pop(0) if self.replies else Reply()
        body = reply.body
        if reply.echo_auth:
            body = {"error": f"token {request.headers.get('Authorization')} is not allowed"}
        if isinstance(body, str):
            return web.Response(status=reply.status, text=body, headers=reply.headers)
        return web.json_response(body, status=reply.status, headers=reply.headers)


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeApi]:
    api = FakeApi()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", api.handle)
    runner = web.AppRunner(app, access_log=None)  # the server side is not under test
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    site = web.SockSite(runner, sock)
    await site.start()
    api.base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    yield api
    await runner.cleanup()


class Sleeps(list[float]):
    """An injected sleep that records what it was asked to wait instead of waiting."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def runner(sleeps: Sleeps) -> action_runner.ActionRunner:
    """The action runner, waits recorded instead of slept (a test module may give its own)."""
    return action_runner.ActionRunner(sleep=sleeps)
