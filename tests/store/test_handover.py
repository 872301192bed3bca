"""The consumer decides what this process stored from the objects the webhook parsed:
the lease reads no body for them; notifications from elsewhere (another replica, a
restart's backlog) are read from the store and parsed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update

from monitor.alerts import payload
from monitor.auth import Authenticator
from monitor.metrics import Metrics
from monitor.runtime import Runtime
from monitor.settings import Settings
from monitor.store import database, facade, queue
from monitor.store import notifications as store_notifications
from monitor.store.notifications import NotificationWriter, StoredNotification
from monitor.store.schema import notifications
from tests.engine.conftest import alert, notification


def store(db: database.Handle, *bodies: bytes) -> list[StoredNotification]:
    items = [(body, payload.parse(body), datetime.now(UTC)) for body in bodies]
    return store_notifications.write_batch(db, items)


def spoil(db: database.Handle, nid: int) -> None:
    """Make the stored body unreadable: only a consumer that reads it notices."""
    with db.begin() as conn:
        conn.execute(update(notifications).where(notifications.c.id == nid).values(payload="{"))


def test_the_lease_reads_no_body_for_the_notifications_held(db: database.Handle) -> None:
    mine, other = store(db, notification(alert("A", "a001")), notification(alert("B", "b001")))
    now = datetime.now(UTC)
    taken = queue.lease(db, "r", now, now + timedelta(minutes=2), limit_alerts=10, held={mine.id})
    assert [(t.id, t.body is None, t.attempts) for t in taken] == [
        (mine.id, True, 0),
        (other.id, False, 0),
    ]
    assert payload.parse((taken[1].body or "").encode()).alerts[0].fingerprint == "b001"
    assert taken[0].received_at is not None


async def test_handed_over_notifications_are_decided_as_parsed(db: database.Handle) -> None:
    writer = NotificationWriter(db)
    writer.start()
    settings = Settings(policies=[])
    seen: dict[int, list[str]] = {}
    decided = asyncio.Event()

    async def handler(batch: list[StoredNotification]) -> dict[int, BaseException]:
        for note in batch:
            seen[note.id] = [a.alert.fingerprint for a in note.alerts]
        decided.set()
        return {}

    rt = Runtime(settings, Metrics(), db, writer, Authenticator(settings), handler=handler)
    rt.idle_poll = 0.01
    try:
        body = notification(alert("Mine", "m001"), alert("Mine", "m002"))
        handed = await writer.submit(body, payload.parse(body), datetime.now(UTC))
        [foreign] = store(db, notification(alert("Theirs", "t001")))  # another replica's
        [spoilt] = store(db, notification(alert("Spoilt", "s001")))
        for nid in (handed.id, spoilt.id):
            spoil(db, nid)  # the handed one is never read again; the spoilt one is
        rt.dispatch(handed)
        taken = await rt.take_batch()
    finally:
        await rt.drain()
        writer.stop()
    assert decided.is_set() and taken == 2  # the spoilt one is parked, not counted
    assert seen == {handed.id: ["m001", "m002"], foreign.id: ["t001"]}
    assert seen.keys().isdisjoint({spoilt.id})  # read from the store, unreadable: parked
    with db.connect() as conn:
        parked = conn.execute(
            notifications.select().where(notifications.c.poisoned_at.is_not(None))
        ).all()
    assert [row.id for row in parked] == [spoilt.id]


async def test_one_pushed_out_of_the_handover_while_leasing_is_still_decided(
    db: database.Handle,
) -> None:
    writer = NotificationWriter(db)
    writer.start()
    settings = Settings(policies=[])
    seen: list[int] = []

    async def handler(batch: list[StoredNotification]) -> dict[int, BaseException]:
        seen.extend(note.id for note in batch)
        return {}

    async def handed(fp: str) -> StoredNotification:
        body = notification(alert("Handed", fp))
        return await writer.submit(body, payload.parse(body), datetime.now(UTC))

    class Racing(Runtime):
        @property
        def store(self) -> facade.Store:
            return RacingStore(self.db)

    class RacingStore(facade.Store):
        async def lease(self, *args: Any, **kwargs: Any) -> queue.Taken:
            taken = await super().lease(*args, **kwargs)
            for fp in ("g001", "h001"):  # the webhook hands over more meanwhile
                rt.dispatch(await handed(fp))
            return taken

    rt = Racing(settings, Metrics(), db, writer, Authenticator(settings), handler=handler)
    rt.batch_alerts = 1  # the handover keeps two alerts' worth: the first is pushed out
    try:
        first = await handed("f001")
        spoil(db, first.id)
        rt.dispatch(first)
        assert await rt.take_batch() == 1
    finally:
        writer.stop()
    assert seen == [first.id]


async def test_a_backlog_up_to_the_backpressure_limit_is_decided_without_a_read(
    db: database.Handle,
) -> None:
    writer = NotificationWriter(db)
    writer.start()
    settings = Settings(policies=[], webhook={"backpressure_alerts": 30})
    seen: list[int] = []

    async def handler(batch: list[StoredNotification]) -> dict[int, BaseException]:
        seen.extend(note.id for note in batch)
        at = datetime.now(UTC)  # marked processed in the handler's commit, as the engine does
        store_notifications.write_batch(db, [], [(note.id, at) for note in batch])
        return {}

    rt = Runtime(settings, Metrics(), db, writer, Authenticator(settings), handler=handler)
    rt.handler_marks = True
    rt.batch_alerts = 5  # the backlog is seven batches
    try:
        stored = []
        for i in range(35):
            body = notification(alert("Storm", f"s{i:03d}"))
            stored.append(await writer.submit(body, payload.parse(body), datetime.now(UTC)))
        for note in stored:
            spoil(db, note.id)  # a body read back would be parked
            rt.dispatch(note)
        while await rt.take_batch():
            pass
    finally:
        writer.stop()
    assert seen == [note.id for note in stored]
