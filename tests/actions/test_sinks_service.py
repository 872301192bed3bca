"""A leaking server against the running service: every record of the call stays clean.

The service runs as a subprocess; the remote API is a real HTTP server on 127.0.0.1 in a
thread. It rejects the call and echoes the bearer token (raw, URL-encoded, JSON-escaped)
and the secret URL's path; the next step pages on-call through a notifier whose URL is
a secret too. Nothing the service records or sends may hold a secret or an echoed part.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.engine.conftest import alert, harness, wait_for
from tests.support import kube_thread
from tests.support.kube_objects import deployment

pytestmark = pytest.mark.integration

TOKEN = "e2e-Tok3n/with+chars"
PURGE_PATH = "/purge/zone-9f8e7d6c5b4a39281706"
HOOK_PATH = "/hooks/T0E2E0001/B0E2E0002/page-s3cret-Path99"
POLICY = """
policies:
  - name: purge-then-page
    match: ['alertname="CacheStale"']
    target: {kind: Deployment, namespace: production, name: conea-api}
    steps:
      - - action: http.request
          with:
            url: {secret: {env: PURGE_URL}}
            auth: {bearer: {env: PURGE_TOKEN}}
            body: {purge_everything: true}
            retries: 0
      - - action: notify
          with: {notifier: oncall, message: "Purge failed for {{ labels.deployment }}"}
    cooldown: 0s
"""


class Remote:
    """Rejects the purge, echoing the secrets it got; records what the hook receives."""

    def __init__(self) -> None:
        self.pages: list[dict[str, Any]] = []
        remote = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path == HOOK_PATH:
                    remote.pages.append(json.loads(body))
                    self.send_response(200)
                    self.end_headers()
                    return
                auth = self.headers.get("Authorization", "")
                token = auth.removeprefix("Bearer ")
                echo = (
                    f"rejected {auth} ({quote(token, safe='')}) on {self.path}: "
                    + json.dumps({"token": token, "path": self.path})
                ).encode()
                self.send_response(403)
                self.send_header("Content-Length", str(len(echo)))
                self.end_headers()
                self.wfile.write(echo)

            def log_message(self, *args: Any) -> None:
                pass  # the server side is not under test

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def remote() -> Iterator[Remote]:
    server = Remote()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()
    server.thread.join()


def test_an_echoing_server_leaves_no_secret_in_any_record(tmp_path: Path, remote: Remote) -> None:
    env = {
        "PURGE_TOKEN": TOKEN + "\n",  # as kubectl create secret --from-file gives it
        "PURGE_URL": remote.base + PURGE_PATH,
        "HOOK_URL": remote.base + HOOK_PATH,
    }
    notifiers = {"oncall": {"kind": "webhook", "url": {"env": "HOOK_URL"}}}
    with kube_thread.emulator() as emulator:
        emulator.add(deployment())
        with harness(
            tmp_path,
            POLICY,
            emulator=emulator,
            env=env,
            notifiers=notifiers,
            log={"level": "DEBUG"},
        ) as h:
            h.post(alert("CacheStale", "ca5e"))
            wait_for(lambda: remote.pages, what="the page to on-call")
            h.wait_execution("ca5e", "succeeded", step=2)
            records = {
                "executions": json.dumps(h.executions(fingerprint="ca5e")),
                "audit": json.dumps(h.audit(fingerprint="ca5e")),
                "notification": json.dumps(remote.pages),
                "logs": h.service.logs(),
            }
    [page] = remote.pages
    [failed] = [entry for entry in page["history"] if entry["step"] == 1]
    assert failed["status"] == "failed"
    assert (
        "HTTP 403, expected 2xx: rejected Bearer <redacted> (<redacted>) on <redacted>"
        in (failed["result"])
    )
    secrets = [TOKEN, quote(TOKEN, safe=""), json.dumps(TOKEN)[1:-1], "9f8e7d6c5b4a39281706"]
    secrets += ["page-s3cret-Path99", "T0E2E0001"]
    for where, text in records.items():
        for secret in secrets:
            assert secret not in text, f"{secret!r} in {where}"
    assert "<redacted>" in records["executions"] and "<redacted>" in records["audit"]
    assert "removed from the value of secret env:PURGE_TOKEN" in records["logs"]
