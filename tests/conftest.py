"""Shared fixtures: real services (session-scoped) and the CI no-skip rule."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support import services

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


@pytest.fixture(scope="session")
def postgres() -> Iterator[services.Postgres]:
    with services.postgres_server() as pg:
        yield pg


@pytest.fixture(scope="session")
def redis_server() -> Iterator[services.Redis]:
    with services.redis_server() as server:
        yield server


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    skipped = terminalreporter.stats.get("skipped", [])
    if os.environ.get("CI") and skipped:
        terminalreporter.write_line(
            f"CI: {len(skipped)} test(s) were skipped; in CI every service must be present",
            red=True,
        )


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or not os.environ.get("CI"):
        return
    if reporter.stats.get("skipped") and exitstatus == 0:
        session.exitstatus = 1
