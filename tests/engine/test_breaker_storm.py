"""A storm over 100 distinct targets with ``automation.max_actions.count: 5``: exactly 5
actions and 95 recorded skips, the metric, one notification; resume gives 5 more."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.engine.conftest import Harness, alert, harness, wait_for
from tests.support import kube_thread
from tests.support import notifier as notifier_server
from tests.support.notifier import Recorder

POLICIES = """
policies:
  - name: storm
    match: ['alertname="Storm"']
    target: {kind: Deployment, namespace: production, name: "{{ labels.deployment }}"}
    steps: [[{action: log, with: {message: "storm on {{ labels.deployment }}"}}]]
    cooldown: 0s
"""


@pytest.fixture
def notifier() -> Iterator[Recorder]:
    with notifier_server.running() as recorder:
        yield recorder


def storm(first: int, count: int) -> list[dict[str, Any]]:
    return [alert("Storm", f"{n:016x}", deployment=f"svc-{n}") for n in range(first, first + count)]


def acted(h: Harness) -> list[dict[str, Any]]:
    return [e for e in h.executions(policy="storm") if e["state"] == "succeeded"]


def breaker_skips(h: Harness) -> list[dict[str, Any]]:
    return [a for a in h.audit(kind="skip", policy="storm") if a["outcome"] == "breaker"]


def breaker_metric(h: Harness) -> float:
    text = h.service.get("/metrics").text
    found = re.search(r"^conea_monitor_breaker_open (\S+)$", text, re.MULTILINE)
    assert found is not None, "conea_monitor_breaker_open is not exposed"
    return float(found.group(1))


def test_a_storm_over_100_targets_gets_exactly_5_actions(
    tmp_path: Path, emu: kube_thread.ThreadedEmulator, notifier: Recorder
) -> None:
    with harness(
        tmp_path,
        POLICIES,
        emulator=emu,
        automation={"max_actions": {"count": 5, "window": "10m", "notifier": "oncall"}},
        notifiers={"oncall": {"kind": "webhook", "url": notifier.url, "retries": 0}},
    ) as h:
        h.post(*storm(0, 100))
        wait_for(lambda: len(acted(h)) + len(breaker_skips(h)) >= 100, 60, "100 decisions recorded")
        assert len(acted(h)) == 5
        skips = breaker_skips(h)
        assert len(skips) == 95
        assert all("breaker open" in s["message"] for s in skips)
        assert breaker_metric(h) == 1
        status = h.service.get("/api/v1/status").json()["breaker"]
        assert status["open"] is True and status["count"] == 5
        wait_for(lambda: notifier.requests, 20, "the breaker's notification")
        [told] = notifier.requests
        assert "breaker open: 5 live actions in the last 10m (max 5)" in json.dumps(told)

        assert h.service.admin("/api/v1/resume").json() == {"paused": False, "breaker": "closed"}
        assert breaker_metric(h) == 0
        status = h.service.get("/api/v1/status").json()["breaker"]
        assert status["open"] is False and status["closed_by"] == "operator-token"

        h.post(*storm(100, 5))
        wait_for(lambda: len(acted(h)) >= 10, 30, "5 more actions after the resume")
        assert len(acted(h)) == 10
        assert len(breaker_skips(h)) == 95
        assert breaker_metric(h) == 0
        assert len(notifier.requests) == 1  # told once, when it opened
