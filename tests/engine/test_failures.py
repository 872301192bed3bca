"""A store that fails mid-notification: every alert is still tried, and the failure is
raised (the runtime then leaves the notification unprocessed, for the next start)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest

from monitor import policy
from monitor.actions import Services, default_registry
from monitor.alerts.payload import Alert, Notification
from monitor.engine.core import Engine
from monitor.engine.firing import FiringCheck
from monitor.metrics import Metrics
from monitor.settings import AutomationSettings
from monitor.store import database
from monitor.store.notifications import StoredAlert, StoredNotification
from tests.support.services import Postgres

POLICY = """
policies:
  - name: record
    match: ['alertname="Down"']
    target: {kind: Service, namespace: production, name: "{{ labels.service }}"}
    steps: [[{action: log}]]
"""


def alert(n: int) -> Alert:
    return Alert.model_validate(
        {
            "status": "firing",
            "labels": {"alertname": "Down", "service": f"s{n}"},
            "annotations": {},
            "startsAt": "2026-11-28T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "",
            "fingerprint": f"{n:016x}",
        }
    )


async def test_a_failing_store_stops_no_other_alert_and_is_reported(
    tmp_path: Path, postgres: Postgres
) -> None:
    name = postgres.create_database("conea_failures")
    db = database.connect(postgres.url(name))
    database.migrate(db)
    (tmp_path / "p.yaml").write_text(POLICY)
    registry = default_registry()
    metrics = Metrics()
    async with httpx.AsyncClient() as http:
        engine = Engine(
            db=db,
            policies=policy.load([tmp_path / "p.yaml"], registry),
            registry=registry,
            services=Services(http=http),
            metrics=metrics,
            automation=AutomationSettings(),
            firing=FiringCheck(None, None, http),
        )
        note = Notification.model_validate(
            {
                "version": "4",
                "groupKey": "g",
                "truncatedAlerts": 0,
                "status": "firing",
                "receiver": "r",
                "groupLabels": {},
                "commonLabels": {},
                "commonAnnotations": {},
                "externalURL": "",
                "alerts": [],
            }
        )
        stored = StoredNotification(
            1, note, datetime.now(UTC), [StoredAlert(0, alert(i), False) for i in range(3)]
        )
        with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        with pytest.raises(Exception, match="conea_failures"):
            await engine.handle(stored)
    db.dispose()
    assert (
        metrics.registry.get_sample_value(
            "conea_monitor_store_errors_total", {"operation": "engine"}
        )
        == 3.0
    )
