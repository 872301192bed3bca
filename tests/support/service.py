"""Run the real service (``python -m monitor serve``) in a subprocess on a free port."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.services import free_port, stop, wait_for

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / "alertmanager" / name).read_bytes()


@dataclass
class Service:
    port: int
    config: Path
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def post(self, body: bytes | str, **kwargs: Any) -> httpx.Response:
        headers = {"content-type": "application/json", **kwargs.pop("headers", {})}
        return httpx.post(
            f"{self.url}/webhook/alertmanager", content=body, headers=headers, timeout=30, **kwargs
        )

    def post_json(self, path: str, body: Any, **kwargs: Any) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", json=body, timeout=30, **kwargs)

    def operator_token(self) -> str:
        """The token the service generated in its data_dir (no automation.api_token set)."""
        data_dir = Path(yaml.safe_load(self.config.read_text())["data_dir"])
        return (self.config.parent / data_dir / "admin-token").read_text().strip()

    def admin(self, path: str, body: Any = None, token: str | None = None) -> httpx.Response:
        """POST to an operator endpoint (pause, resume, reload) with the operator token."""
        headers = {"authorization": f"Bearer {token or self.operator_token()}"}
        return self.post_json(path, {} if body is None else body, headers=headers)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=30, **kwargs)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


_databases = itertools.count()


def store_url(request: pytest.FixtureRequest, directory: Path, prefix: str) -> str:
    """A store for a fixture parametrised over ``sqlite`` and ``postgres``: a SQLite file in
    ``directory``, or a new database on the session's PostgreSQL."""
    if request.param == "postgres":
        pg = request.getfixturevalue("postgres")
        return str(pg.url(pg.create_database(f"{prefix}_{next(_databases)}")))
    return f"sqlite:///{directory / 'store.db'}"


def write_config(directory: Path, **settings: Any) -> Path:
    data = {"data_dir": str(directory / "data"), "policies": [], **settings}
    path = directory / "conea-monitor.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def start(config: Path, env: dict[str, str] | None = None, port: int | None = None) -> Service:
    port = port or free_port()
    log = config.parent / f"service-{port}.log"
    with log.open("ab") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "monitor",
                "serve",
                "--config",
                str(config),
                "--port",
                str(port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, **(env or {})},
            cwd=config.parent,
        )
    service = Service(port, config, proc, log)

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"service exited early:\n{service.logs()}")
        return httpx.get(f"{service.url}/readyz", timeout=1).status_code == 200

    wait_for(ready, 30, "conea-monitor")
    return service


@contextlib.contextmanager
def running(config: Path, env: dict[str, str] | None = None) -> Iterator[Service]:
    service = start(config, env)
    try:
        yield service
    finally:
        stop(service.process)
