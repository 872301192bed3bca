"""The alert as templates, policies and actions see it.

:class:`AlertContext` is built from a payload :class:`~monitor.alerts.payload.Alert`
(:func:`alert_context`) or, for a later step, from what the store kept of the alert.
It lives with the alerts so that policies and the engine need not import the actions
to name it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from monitor.alerts.payload import Alert


@dataclass(frozen=True)
class AlertContext:
    """The alert an action runs for, as templates and actions see it."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    status: str
    fingerprint: str
    starts_at: datetime
    generator_url: str = ""
    ends_at: datetime | None = None


def alert_context(alert: Alert) -> AlertContext:
    """The context of one alert of a webhook payload."""
    return AlertContext(
        labels=dict(alert.labels),
        annotations=dict(alert.annotations),
        status=alert.status,
        fingerprint=alert.fingerprint,
        starts_at=alert.starts_at,
        generator_url=alert.generator_url,
        ends_at=alert.ends_at,
    )
