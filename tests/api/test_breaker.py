"""The breaker's operator surfaces: /api/v1/status shows it, /api/v1/resume closes it (and
says so), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.store import breaker, database
from tests.support import service as svc
from tests.support.services import Postgres

OPENED = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
REASON = "breaker open: 5 live actions in the last 10m (max 5)"


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    pg: Postgres = request.getfixturevalue("postgres")
    return pg.url(pg.create_database("conea_test_breaker_api"))


@pytest.fixture
def store(store_url: str) -> Iterator[database.Handle]:
    handle = database.connect(store_url)
    yield handle
    handle.dispose()


def test_resume_closes_an_open_breaker_and_status_shows_it(
    store_url: str, store: database.Handle, tmp_path: Path
) -> None:
    config = svc.write_config(
        tmp_path,
        store={"url": store_url},
        automation={"max_actions": {"count": 5, "window": "10m", "reset": "manual"}},
    )
    with svc.running(config) as service:
        closed = {
            "open": False,
            "opened_at": None,
            "reason": None,
            "closed_at": None,
            "closed_by": None,
            "count": 5,
            "window": "10m",
            "reset": "manual",
        }
        assert service.get("/api/v1/status").json()["breaker"] == closed
        assert breaker.open_breaker(store, OPENED, REASON)  # as the engine of a replica does
        shown = service.get("/api/v1/status").json()["breaker"]
        assert shown == {
            **closed,
            "open": True,
            "opened_at": "2026-11-29T08:00:00+00:00",
            "reason": REASON,
        }

        assert service.admin("/api/v1/resume").json() == {"paused": False, "breaker": "closed"}
        shown = service.get("/api/v1/status").json()["breaker"]
        assert (shown["open"], shown["reason"], shown["closed_by"]) == (
            False,
            REASON,
            "operator-token",
        )
        assert shown["closed_at"] is not None
        closing = [
            a
            for a in service.get("/api/v1/audit").json()["items"]
            if a["kind"] == "breaker" and a["outcome"] == "closed"
        ]
        assert [a["message"] for a in closing] == ["breaker closed by operator-token"]
        # Nothing open: resume says nothing about the breaker.
        assert service.admin("/api/v1/resume").json() == {"paused": False}


def test_status_says_when_no_breaker_is_configured(tmp_path: Path) -> None:
    with svc.running(svc.write_config(tmp_path)) as service:
        assert service.get("/api/v1/status").json()["breaker"] == {
            "open": False,
            "opened_at": None,
            "reason": None,
            "closed_at": None,
            "closed_by": None,
            "count": None,
            "window": None,
            "reset": None,
        }
