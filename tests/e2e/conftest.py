"""The stack per test: demo API, conea-monitor, Prometheus, Alertmanager, emulator."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from demo import stack as stack_mod
from tests.support import services

FAILED = pytest.StashKey[bool]()
LATENCY = "_firing_to_kubernetes_write_seconds"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        item.stash[FAILED] = True
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One summary line per measured time from alert firing to the Kubernetes write."""
    lines = []
    for report in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get(
        "failed", []
    ):
        if report.when != "call":
            continue
        for name, value in report.user_properties:
            if name.endswith(LATENCY):
                lines.append(f"{name.removesuffix(LATENCY)}: {value:.2f}s from firing to write")
    if lines:
        terminalreporter.write_sep("-", "e2e: alert firing in Prometheus -> Kubernetes write")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture
def e2e(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[stack_mod.Stack]:
    """A fresh stack per scenario (about 3 s to start), as after a new install: the
    scenarios act on the same Deployment, and the per-target budget counts every policy's
    attempts. On a failure, the audit trail and the end of the service's log are printed."""
    services.need_binary("prometheus")
    services.need_binary("prometheus-alertmanager", "alertmanager")
    with stack_mod.running(tmp_path) as stack:
        try:
            yield stack
        finally:
            if request.node.stash.get(FAILED, False):
                print("\n--- audit trail ---")
                for a in stack.audit():
                    print(a["at"], a["kind"], a["outcome"], a["message"])
                print("--- service log (end) ---")
                print(stack.service.logs()[-4000:])
