"""The Alertmanager webhook payload (version "4"), parsed straight from the raw body.

Alertmanager sends ``endsAt`` as ``0001-01-01T00:00:00Z`` for a firing alert; it is
kept as ``None`` here. Unknown top-level keys from a newer Alertmanager are ignored,
but every documented field is checked for presence and type.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from monitor import yamlfile

ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class Alert(_Model):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: AwareDatetime = Field(alias="startsAt")
    ends_at_raw: AwareDatetime = Field(alias="endsAt")
    generator_url: str = Field(alias="generatorURL")
    fingerprint: str = Field(min_length=1)

    @property
    def ends_at(self) -> datetime | None:
        """``endsAt``, or None for Alertmanager's ``0001-01-01T00:00:00Z`` (not ended)."""
        return None if self.ends_at_raw <= ZERO_TIME else self.ends_at_raw

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def key(self) -> tuple[str, datetime, str]:
        """What makes a delivery a repeat: fingerprint, startsAt and status."""
        return (self.fingerprint, self.starts_at, self.status)


class Notification(_Model):
    version: Literal["4"]
    group_key: str = Field(alias="groupKey")
    truncated_alerts: int = Field(alias="truncatedAlerts", ge=0)
    status: Literal["firing", "resolved"]
    receiver: str
    group_labels: dict[str, str] = Field(alias="groupLabels")
    common_labels: dict[str, str] = Field(alias="commonLabels")
    common_annotations: dict[str, str] = Field(alias="commonAnnotations")
    external_url: str = Field(alias="externalURL")
    alerts: list[Alert]
    notification_reason: str | None = None


class PayloadError(ValueError):
    """The body is not a valid Alertmanager notification; ``details`` says where."""

    def __init__(self, message: str, details: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


def parse(body: bytes) -> Notification:
    """Parse and validate a raw webhook body; raise PayloadError with field paths."""
    try:
        return Notification.model_validate_json(body)
    except ValidationError as exc:
        details = []
        for error in exc.errors(include_url=False):
            if error["type"] == "json_invalid":
                raise PayloadError(
                    "body is not valid JSON", [{"field": "(body)", "reason": error["msg"]}]
                ) from None
            details.append({"field": yamlfile.dotted(error["loc"]), "reason": _reason(error)})
        if details and details[0]["field"] == "(top level)":
            raise PayloadError("body must be a JSON object", details) from None
        return _raise_invalid(details)


def _reason(error: Any) -> str:
    if error["type"] == "missing":
        return "required field is missing"
    if error["type"] == "literal_error" and error["loc"] == ("version",):
        return f"unsupported version {error['input']!r}; expected '4' (Alertmanager >= 0.16)"
    return str(error["msg"])


def _raise_invalid(details: list[dict[str, str]]) -> Notification:
    fields = ", ".join(d["field"] for d in details[:5])
    raise PayloadError(f"invalid Alertmanager notification: {fields}", details)
