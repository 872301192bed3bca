"""The real app (``create_app``) served by uvicorn in a thread, for the fuzz suite.

Every request goes over a real socket with a per-request timeout, so a hang shows up as
a ``httpx.TimeoutException`` naming the request instead of stalling the run.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

from monitor.app import create_app
from monitor.settings import Settings

WEBHOOK_TOKEN = "fuzz-webhook-token"
ADMIN_TOKEN = "fuzz-operator-token"

#: A request that takes longer than this is a hang.
REQUEST_TIMEOUT = 30.0

#: One policy that matches every alert with a name, so fuzzed labels and annotations go
#: through matching, templating and the engine's record of an execution (``log`` only).
POLICY = """\
policies:
  - name: fuzz-log
    severity: critical
    match: ['alertname=~".+"']
    target:
      kind: Deployment
      namespace: "{{ labels.namespace | default('default') }}"
      name: "{{ labels.alertname }}"
    steps:
      - - action: log
          with: {message: "{{ annotations.summary | default('fuzz') }}"}
"""


def settings(directory: Path, store_url: str) -> Settings:
    """Settings with credentials for the webhook and an operator token for the admin API."""
    policies = directory / "policies"
    policies.mkdir(exist_ok=True)
    (policies / "fuzz.yaml").write_text(POLICY)
    return Settings(
        data_dir=directory / "data",
        policies=[policies],
        store={"url": store_url, "sqlite_synchronous": "NORMAL"},
        kubernetes={"mode": "none"},
        webhook={"bearer_token": WEBHOOK_TOKEN},
        automation={"api_token": ADMIN_TOKEN},
    )


@dataclass
class Running:
    """A served app; ``cases`` counts the fuzz requests it answered."""

    url: str
    settings: Settings
    client: httpx.Client
    cases: int = 0
    hung: str = ""  # the request it stopped answering at, if it did

    @property
    def webhook_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {WEBHOOK_TOKEN}", "content-type": "application/json"}

    @property
    def admin_headers(self) -> dict[str, str]:
        token = self.settings.automation.api_token
        assert token is not None
        return {"authorization": f"Bearer {token.get_secret_value()}"}


@contextlib.contextmanager
def serve(app_settings: Settings) -> Iterator[Running]:
    config = uvicorn.Config(
        create_app(app_settings),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="on",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="fuzz-uvicorn", daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the service stopped during start-up; see the log above")
            thread.join(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT) as client:
            yield Running(url, app_settings, client)
    finally:
        server.should_exit = True
        thread.join(REQUEST_TIMEOUT)
