"""PagerDuty's Events API v2: the trigger a page sends and the resolve that closes it.

One incident per execution: the dedup key is ``conea-monitor/<execution id>``, so the
engine can resolve what an execution's page opened when the alert resolves or the
step is verified; the engine's other pages have keys of their own (:func:`approval_key`,
:func:`breaker_key`). The event's shape is PagerDuty's (``payload.summary`` at most 1024
characters, ``severity`` one of critical, error, warning, info); the routing key is a
secret reference, shown as a placeholder in plans and filled in when the event is sent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

SUMMARY_LIMIT = 1024
DEDUP_LIMIT = 255
FIELD_LIMIT = 255  # source, component, group, class: short strings
CLIENT = "conea-monitor"
SEVERITIES = {
    "critical": "critical",
    "page": "critical",
    "error": "error",
    "high": "error",
    "major": "error",
    "warning": "warning",
    "warn": "warning",
    "minor": "warning",
    "info": "info",
    "low": "info",
    "none": "info",
}
DEFAULT_SEVERITY = "error"


def dedup_key(execution_id: str) -> str:
    return f"{CLIENT}/{execution_id}"[:DEDUP_LIMIT]


def approval_key(execution_id: int) -> str:
    """The incident of the approval request of an execution."""
    return f"{CLIENT}/approval/{execution_id}"


def breaker_key(opened_at: datetime) -> str:
    """The incident of the breaker opened at ``opened_at`` (UTC, to the microsecond)."""
    return f"{CLIENT}/breaker/{opened_at.astimezone(UTC).isoformat()}"


def severity(labels: dict[str, str]) -> str:
    """PagerDuty's severity from the alert's ``severity`` label (``error`` if unknown)."""
    return SEVERITIES.get(labels.get("severity", "").strip().lower(), DEFAULT_SEVERITY)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def trigger(
    message: dict[str, Any], routing_key: str, public_url: str, dedup: str | None = None
) -> dict[str, Any]:
    """The trigger event for a composed message (see :func:`monitor.actions.notify.compose`);
    ``dedup`` the incident's key (none: PagerDuty makes one up)."""
    alert = message["alert"] or {}
    labels: dict[str, str] = alert.get("labels", {})
    target: dict[str, str] = message["target"]
    lead = message["message"] or message["summary"] or ""
    summary = message["title"] + (f": {lead}" if lead else "")
    payload: dict[str, Any] = {
        "summary": _cut(" ".join(summary.split()), SUMMARY_LIMIT),
        "source": _cut(
            labels.get("instance") or target.get("name") or labels.get("job") or CLIENT,
            FIELD_LIMIT,
        ),
        "severity": severity(labels),
    }
    if alert.get("starts_at"):
        payload["timestamp"] = alert["starts_at"]
    optional = {
        "component": target.get("name") or labels.get("service") or labels.get("job"),
        "group": target.get("namespace") or labels.get("namespace"),
        "class": labels.get("alertname"),
    }
    payload.update({k: _cut(v, FIELD_LIMIT) for k, v in optional.items() if v})
    payload["custom_details"] = {
        "message": message["message"],
        "policy": message["policy"],
        "step": message["step"],  # already 1-based (notify.compose)
        "labels": labels,
        "what was done": message["steps"],
        "evidence": message["evidence"],
    }
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "payload": payload,
        "client": CLIENT,
    }
    if dedup:
        event["dedup_key"] = dedup[:DEDUP_LIMIT]
    texts = {"audit": f"Execution {message['execution_id']} in conea-monitor"}
    texts["alert"] = "Alert source"
    links = [
        {"href": url, "text": texts[name]}
        for name, url in sorted(message["links"].items(), key=lambda link: link[0] != "audit")
        if url.lower().startswith(("http://", "https://"))
    ]
    if links:
        event["links"] = links
    if public_url:
        event["client_url"] = message["links"].get("audit") or public_url
    return event


def resolve(routing_key: str, dedup: str) -> dict[str, Any]:
    """The resolve event for the incident a trigger with the key ``dedup`` opened."""
    return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup[:DEDUP_LIMIT]}
