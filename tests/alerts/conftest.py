from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import service as svc
from tests.support.services import Postgres

_counter = itertools.count()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    pg: Postgres = request.getfixturevalue("postgres")
    name = pg.create_database(f"conea_test_{next(_counter)}")
    return pg.url(name)


@pytest.fixture
def service(store_url: str, tmp_path: Path) -> Iterator[svc.Service]:
    config = svc.write_config(tmp_path, store={"url": store_url})
    with svc.running(config) as running:
        yield running
