"""Is this alert still firing? Asked right before acting, and by default verification.

Alertmanager's ``/api/v2/alerts`` is asked first (it knows the exact fingerprint, and a
silenced or inhibited alert counts as handled by a person, not firing); otherwise
Prometheus's ``ALERTS`` series; otherwise only the webhooks received can tell.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Literal

import httpx

from monitor.alerts.context import AlertContext
from monitor.engine import verifier as verifier_mod

State = Literal["firing", "not_firing", "unknown"]


class FiringCheck:
    def __init__(
        self,
        alertmanager_url: str | None,
        verifier: verifier_mod.Verifier | None,
        http: httpx.AsyncClient,
    ) -> None:
        self.alertmanager_url = alertmanager_url.rstrip("/") if alertmanager_url else None
        self.verifier = verifier
        self.http = http

    @property
    def configured(self) -> bool:
        return self.alertmanager_url is not None or self.verifier is not None

    async def state(self, alert: AlertContext) -> tuple[State, str]:
        """``firing`` / ``not_firing`` with the evidence, or ``unknown`` with the reason."""
        if self.alertmanager_url is not None:
            return await self._alertmanager(alert)
        if self.verifier is not None:
            labels = {k: v for k, v in alert.labels.items() if k != "alertname"}
            try:
                firing = await self.verifier.alert_firing(alert.labels.get("alertname", ""), labels)
            except verifier_mod.QueryError as exc:
                return "unknown", f"Prometheus could not say: {exc}"
            return (
                ("firing", "ALERTS is firing")
                if firing
                else ("not_firing", "ALERTS has no firing series for the alert")
            )
        return "unknown", "no Alertmanager or Prometheus URL configured to ask"

    async def _alertmanager(self, alert: AlertContext) -> tuple[State, str]:
        name = alert.labels.get("alertname", "")
        url = f"{self.alertmanager_url}/api/v2/alerts"
        params = {
            "active": "true",
            "silenced": "true",
            "inhibited": "true",
            "unprocessed": "true",
            "filter": f"alertname={json.dumps(name)}",
        }
        try:
            response = await self.http.get(url, params=params, timeout=5)
            response.raise_for_status()
            found = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            return "unknown", f"Alertmanager at {self.alertmanager_url} did not answer: {exc}"
        for item in found:
            if item.get("fingerprint") != alert.fingerprint:
                continue
            if not _same_start(item.get("startsAt"), alert.starts_at):
                return "not_firing", "Alertmanager has a newer episode of this alert"
            state = (item.get("status") or {}).get("state")
            if state == "active":
                return "firing", "Alertmanager reports the alert active"
            return "not_firing", f"Alertmanager reports the alert {state} (silenced/inhibited)"
        return "not_firing", "Alertmanager no longer has the alert"


def _same_start(text: str | None, starts_at: datetime) -> bool:
    if not text:
        return True
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return True
    return abs((parsed - starts_at).total_seconds()) < 1
