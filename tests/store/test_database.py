"""The store's connection handle as the rest of the service uses it."""

from __future__ import annotations

import pytest

from monitor.errors import StoreError
from monitor.store import database


def test_ping_of_a_store_that_does_not_answer_is_a_store_error_naming_only_the_kind() -> None:
    # Nothing listens on port 1: the driver's error must reach /readyz as a StoreError
    # (not SQLAlchemy's), and its message must not quote the URL's password.
    db = database.connect("postgresql://monitor:hunter2@127.0.0.1:1/monitor")
    try:
        with pytest.raises(StoreError) as caught:
            database.ping(db)
    finally:
        db.dispose()
    assert str(caught.value) == "OperationalError"
    assert "hunter2" not in str(caught.value)
