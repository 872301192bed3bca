"""A real Prometheus holding the known history of :mod:`tests.replay.scenario`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.replay import scenario
from tests.support import services
from tests.support.alerts_history import prometheus_with


@pytest.fixture(scope="session")
def history_prometheus() -> Iterator[services.Prometheus]:
    with prometheus_with(scenario.HISTORY) as prom:
        yield prom


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    path = tmp_path / "policies.yaml"
    path.write_text(scenario.POLICIES)
    return path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A settings file whose store is a SQLite file under tmp_path."""
    path = tmp_path / "conea.yaml"
    path.write_text(f"data_dir: {tmp_path / 'data'}\npolicies: [{tmp_path / 'policies.yaml'}]\n")
    return path
