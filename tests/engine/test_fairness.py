"""Alerts of one notification are decided independently: one alert whose ladder fails
while the notifier hangs does not hold up the healthy alerts next to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine.conftest import alert, harness, wait_for
from tests.support import kube_thread
from tests.support import notifier as notifier_server
from tests.support.kube_objects import deployment
from tests.support.notifier import Recorder

POLICIES = """
policies:
  - name: scale-busy
    match: ['alertname="Busy"']
    target: {kind: Deployment, namespace: production, name: "{{ labels.deployment }}"}
    steps: [[{action: kubernetes.scale, with: {replicas: 3}}]]
    cooldown: 0s
  - name: broken
    match: ['alertname="Broken"']
    target: {kind: Deployment, namespace: production, name: "{{ labels.deployment }}"}
    steps:
      - [{action: kubernetes.scale, with: {replicas: 3}}]
      - [{action: notify, with: {notifier: oncall, message: "scaling failed"}}]
    cooldown: 0s
"""


@pytest.fixture
def notifier() -> Iterator[Recorder]:
    """A notifier that is down: each request waits until released, then gets a 503."""
    with notifier_server.running(status=503, hold=True) as recorder:
        yield recorder


@pytest.fixture
def busy() -> Iterator[kube_thread.ThreadedEmulator]:
    with kube_thread.emulator() as emulator:
        for n in range(10):
            emulator.add(deployment(name=f"busy-{n}"))
        yield emulator


def test_a_failing_ladder_does_not_hold_up_the_healthy_alerts(
    tmp_path: Path, busy: kube_thread.ThreadedEmulator, notifier: Recorder
) -> None:
    notifiers = {"oncall": {"kind": "webhook", "url": notifier.url, "retries": 0, "timeout": 90}}
    with harness(tmp_path, POLICIES, emulator=busy, notifiers=notifiers) as h:
        # The failing alert comes first: Deployment "gone" does not exist, so step 1
        # fails and the ladder escalates to notify, whose notifier hangs.
        h.post(
            alert("Broken", "b0", deployment="gone"),
            *(alert("Busy", f"h{n}", deployment=f"busy-{n}") for n in range(10)),
        )
        assert notifier.called.wait(30), "the failing alert's ladder never reached notify"

        def scaled() -> bool:
            return all(
                busy.read("Deployment", "production", f"busy-{n}")["spec"]["replicas"] == 3
                for n in range(10)
            )

        def recorded() -> int:
            return sum(
                1
                for a in h.audit()
                if a["kind"] == "execute"
                and a["outcome"] == "succeeded"
                and a["policy"] == "scale-busy"
            )

        # While the notifier still holds the failing alert's step 2, the ten are scaled
        # (the write reaches Kubernetes a moment before its audit record: wait for both).
        wait_for(lambda: scaled() and recorded() == 10, 30, "the 10 healthy Deployments scaled")
        assert not notifier.release.is_set()
        held_at = [a["id"] for a in h.audit()]
        notifier.release.set()
        failed = h.wait_execution("b0", "failed", step=2, timeout=60)
        assert "notify" in (failed["error"] or "")
        audit = h.audit()
    # Order of events: every healthy alert's successful scale was recorded before the
    # failing alert's notify finished failing (it had not, while the notifier held it).
    scales = [
        a["id"]
        for a in audit
        if a["kind"] == "execute" and a["outcome"] == "succeeded" and a["policy"] == "scale-busy"
    ]
    notify_failed = [
        a["id"]
        for a in audit
        if a["kind"] == "execute" and a["outcome"] == "failed" and a["policy"] == "broken"
    ]
    assert len(scales) == 10
    assert set(scales) <= set(held_at)
    assert max(scales) < max(notify_failed)
    # The notifier's `retries: 0` is the whole count: one request, nothing retries below
    # the action runner (the engine's 3 tries used to stack on top of it).
    assert len(notifier.requests) == 1
