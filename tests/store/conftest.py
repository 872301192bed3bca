"""A migrated store on SQLite and on PostgreSQL, for the store's own tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.store import database
from tests.support import service


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[database.Handle]:
    handle = database.connect(service.store_url(request, tmp_path, "conea_store"), pool_size=12)
    database.migrate(handle)
    yield handle
    handle.dispose()
