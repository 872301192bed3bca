"""The served app the fuzz tests share, once per store (SQLite file, PostgreSQL database)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from tests.fuzz import server
from tests.support.services import Postgres

_counter = itertools.count()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def service(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[server.Running]:
    directory = tmp_path_factory.mktemp(f"fuzz-{backend}")
    if backend == "sqlite":
        url = f"sqlite:///{directory / 'store.db'}"
    else:
        pg: Postgres = request.getfixturevalue("postgres")
        url = pg.url(pg.create_database(f"conea_fuzz_{next(_counter)}"))
    with server.serve(server.settings(directory, url)) as running:
        yield running
