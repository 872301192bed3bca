"""Fixtures: the Kubernetes emulator on a real port, and the service's client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import kmock
import pytest

from monitor import scope as scope_mod
from monitor.actions import kubernetes as kubernetes_actions
from monitor.actions import runner as action_runner
from monitor.actions.registry import ActionContext, Registry, Services
from monitor.k8s import client
from tests.support import kube_emulator


@pytest.fixture()
async def emulator() -> AsyncIterator[kube_emulator.KubeEmulator]:
    async with kube_emulator.KubeEmulator() as handler, kmock.Server(handler):
        yield handler


@pytest.fixture()
def sleeps() -> list[float]:
    return []


@pytest.fixture()
def runner(sleeps: list[float]) -> action_runner.ActionRunner:
    """The action runner, its waits recorded in ``sleeps`` instead of slept."""

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    return action_runner.ActionRunner(
        retry=action_runner.RetryPolicy(attempts=4, first=0.05), sleep=sleep
    )


@pytest.fixture()
def kube(emulator: kube_emulator.KubeEmulator) -> Iterator[client.Kube]:
    kube = client.for_host(
        str(emulator.url),
        scope=scope_mod.Scope.of(["production", "staging"]),
        timeout=(1.0, 0.3),
    )
    yield kube
    kube.close()


def context(kube: client.Kube, **target: str) -> ActionContext:
    target.setdefault("kind", "Deployment")
    target.setdefault("namespace", "production")
    target.setdefault("name", "conea-api")
    return ActionContext(
        alert=None,
        target=target,
        services=Services(kube=kube),
        policy="test",
        now=lambda: datetime(2026, 11, 28, 12, 0, tzinfo=UTC),
    )


@pytest.fixture()
def actions() -> Registry:
    registry = Registry()
    kubernetes_actions.register(registry)
    return registry
