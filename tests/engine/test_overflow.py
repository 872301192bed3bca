"""A stored alert with a far-future startsAt cannot make the engine raise: date
arithmetic on alert times is clamped, and a notification stored before the webhook's
bounds existed (one the payload model now refuses) is parked at start-up while the
others are decided."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor import policy
from monitor import scope as scope_mod
from monitor.actions import default_registry
from monitor.alerts import payload
from monitor.engine import guardrails
from monitor.store import database
from monitor.store import notifications as store_notifications
from monitor.store.records import TargetHistory
from tests.engine.conftest import alert, notification, wait_for
from tests.support import service as svc

POLICY = """
policies:
  - name: record
    match: ['alertname="Down"']
    target: {kind: Service, namespace: production, name: "{{ labels.service }}"}
    steps: [[{action: log}]]
    for_at_least: 5m
"""
FAR = "9999-12-31T23:59:59Z"


def test_far_future_start_is_deferred_not_an_overflow(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(POLICY)
    [record] = policy.load([tmp_path / "p.yaml"], default_registry())
    decision = guardrails.decide(
        record,
        target={"kind": "Service", "namespace": "production", "name": "s"},
        starts_at=datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
        now=datetime(2026, 11, 29, tzinfo=UTC),
        paused=False,
        rehearsal=False,
        scope=scope_mod.Scope(),
        history=TargetHistory(None, 0),
    )
    assert (decision.outcome, decision.guardrail) == ("defer", "for_at_least")
    assert decision.due_at == guardrails.LATEST
    assert guardrails.later(guardrails.LATEST, timedelta(days=-1)) == guardrails.LATEST - (
        timedelta(days=1)
    )


def test_a_stored_far_future_alert_does_not_stop_the_engine(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    db = database.connect(url)
    database.migrate(db)
    bodies = [
        notification(alert("Down", "f0", starts=FAR, service="far")),
        notification(
            alert("Down", "f1", starts=FAR, service="far-too"),
            alert("Down", "n1", starts="2026-11-28T10:00:00Z", service="next-to-it"),
        ),
        notification(alert("Down", "n2", starts="2026-11-28T10:00:00Z", service="after")),
    ]
    now = datetime.now(UTC)
    # Stored as an older version accepted them: today's model refuses a startsAt past 2999,
    # so the rows are written from a bounded twin and the stored body keeps year 9999.
    twins = [payload.parse(b.replace(FAR.encode(), b"2999-01-01T00:00:00Z")) for b in bodies]
    store_notifications.write_batch(db, [(b, t, now) for b, t in zip(bodies, twins, strict=True)])
    db.dispose()
    folder = tmp_path / "remediations"
    folder.mkdir()
    (folder / "p.yaml").write_text(POLICY)
    config = svc.write_config(
        tmp_path, policies=[str(folder)], store={"url": url}, automation={"dry_run": False}
    )
    with svc.running(config) as service:

        def states() -> dict[str, str]:
            items = service.get("/api/v1/executions").json()["items"]
            return {e["fingerprint"]: e["state"] for e in items}

        def parked() -> list[str]:
            items = service.get("/api/v1/audit", params={"kind": "poison"}).json()["items"]
            return [i["message"] for i in items]

        wait_for(lambda: states() == {"n2": "succeeded"}, 30, "the valid notification decided")
        wait_for(lambda: len(parked()) == 2, 30, "both far-future notifications parked")
        assert all("alerts[0].startsAt" in message for message in parked())
    assert "OverflowError" not in service.logs()
