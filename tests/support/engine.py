"""An engine in the test's own event loop, without the service around it: for tests that
drive the engine directly (a hanging action, a failing store) against a real store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from monitor import policy
from monitor.actions import Services
from monitor.actions.registry import Registry
from monitor.alerts.payload import Alert, Notification
from monitor.engine.core import Engine
from monitor.engine.firing import FiringCheck
from monitor.metrics import Metrics
from monitor.settings import AutomationSettings
from monitor.store import database
from monitor.store.facade import Store
from monitor.store.notifications import StoredAlert, StoredNotification


@dataclass
class Clock:
    """The engine's clock, moved on by the test (``at``): no timer waits for real time."""

    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def now(self) -> datetime:
        return self.at


def offline_engine(
    db: database.Handle,
    policy_text: str,
    registry: Registry,
    http: httpx.AsyncClient,
    directory: Path,
    metrics: Metrics | None = None,
) -> Engine:
    """An engine acting for real (no dry-run), with no Alertmanager to re-check against."""
    path = directory / "policies.yaml"
    path.write_text(policy_text)
    return Engine(
        store=Store(db),
        policies=policy.load([path], registry),
        registry=registry,
        services=Services(http=http),
        metrics=metrics or Metrics(),
        automation=AutomationSettings(dry_run=False),
        firing=FiringCheck(None, None, http),
    )


def firing(fingerprint: str, **labels: str) -> Alert:
    return Alert.model_validate(
        {
            "status": "firing",
            "labels": labels,
            "annotations": {},
            "startsAt": "2026-11-28T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "",
            "fingerprint": fingerprint,
        }
    )


def stored(alerts: Sequence[Alert], ident: int = 1) -> StoredNotification:
    """A notification as the runtime hands it to the engine (every alert new)."""
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
    return StoredNotification(
        ident, note, datetime.now(UTC), [StoredAlert(0, a, False) for a in alerts]
    )
