"""The Alertmanager webhook payload (version "4"), parsed straight from the raw body.

Alertmanager sends ``endsAt`` as ``0001-01-01T00:00:00Z`` for a firing alert; it is
kept as ``None`` here. Unknown top-level keys from a newer Alertmanager are ignored,
but every documented field is checked for presence and type.

Every value the store keeps is bounded here, so that what passes is what both SQLite
and PostgreSQL can hold (the column sizes in ``monitor.store.schema``): strings by
length, integers by range, times to the years 1970..2999 (``endsAt`` may also be the
zero time), and no NUL character anywhere. The bounds are pydantic constraints, checked
in pydantic-core; what they cannot say is checked in one pass in :func:`parse`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from monitor import yamlfile

ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
END_OF_RANGE = datetime(3000, 1, 1, tzinfo=UTC)  # exclusive; leaves room for date arithmetic

MAX_ALERTS = 10_000
MAX_LABELS = 256  # per label set, and per annotation set
MAX_NAME = 1024  # label and annotation names
MAX_LABEL_VALUE = 4096
MAX_ANNOTATION_VALUE = 65_536
MAX_URL = 8192
MAX_ALERTNAME = 255  # alerts.alertname
MAX_INT32 = 2**31 - 1  # INTEGER on PostgreSQL

Name = Annotated[str, StringConstraints(max_length=MAX_NAME)]
LabelValue = Annotated[str, StringConstraints(max_length=MAX_LABEL_VALUE)]
Labels = Annotated[dict[Name, LabelValue], Field(max_length=MAX_LABELS)]
Annotations = Annotated[
    dict[Name, Annotated[str, StringConstraints(max_length=MAX_ANNOTATION_VALUE)]],
    Field(max_length=MAX_LABELS),
]
Url = Annotated[str, StringConstraints(max_length=MAX_URL)]
Time = Annotated[AwareDatetime, Field(ge=EARLIEST, lt=END_OF_RANGE)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class Alert(_Model):
    status: Literal["firing", "resolved"]
    labels: Labels
    annotations: Annotations
    starts_at: Time = Field(alias="startsAt")
    # The zero time (not ended) or a time in range; parse() refuses what lies between.
    ends_at_raw: AwareDatetime = Field(alias="endsAt", ge=ZERO_TIME, lt=END_OF_RANGE)
    generator_url: Url = Field(alias="generatorURL")
    fingerprint: str = Field(min_length=1, max_length=64)  # alerts.fingerprint

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
    group_key: str = Field(alias="groupKey", max_length=MAX_URL)
    truncated_alerts: int = Field(alias="truncatedAlerts", ge=0, le=MAX_INT32)
    status: Literal["firing", "resolved"]
    receiver: str = Field(max_length=255)  # notifications.receiver
    group_labels: Labels = Field(alias="groupLabels")
    common_labels: Labels = Field(alias="commonLabels")
    common_annotations: Annotations = Field(alias="commonAnnotations")
    external_url: Url = Field(alias="externalURL")
    alerts: list[Alert] = Field(max_length=MAX_ALERTS)
    notification_reason: str | None = Field(None, max_length=64)  # notifications.*


class PayloadError(ValueError):
    """The body is not a valid Alertmanager notification; ``details`` says where."""

    def __init__(self, message: str, details: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


def parse(body: bytes) -> Notification:
    """Parse and validate a raw webhook body; raise PayloadError with field paths."""
    try:
        notification = Notification.model_validate_json(body)
    except ValidationError as exc:
        details = []
        for error in exc.errors(include_url=False):
            if error["type"] == "json_invalid":
                raise PayloadError(
                    "body is not valid JSON", [{"field": "(body)", "reason": error["msg"]}]
                ) from None
            details.append({"field": _field(error["loc"]), "reason": _reason(error)})
        if details and details[0]["field"] == "(top level)":
            raise PayloadError("body must be a JSON object", details) from None
        return _raise_invalid(details)
    details = []
    for i, alert in enumerate(notification.alerts):
        if len(alert.labels.get("alertname", "")) > MAX_ALERTNAME:
            details.append(
                {
                    "field": f"alerts[{i}].labels.alertname",
                    "reason": f"String should have at most {MAX_ALERTNAME} characters",
                }
            )
        ends = alert.ends_at_raw
        if ZERO_TIME < ends < EARLIEST:
            details.append(
                {
                    "field": f"alerts[{i}].endsAt",
                    "reason": "Input should be 0001-01-01T00:00:00Z (not ended) "
                    "or greater than or equal to 1970-01-01T00:00:00Z",
                }
            )
    # JSON can carry NUL only as the escape \u0000 (a raw control character is invalid
    # JSON), so a body without that sequence holds none; PostgreSQL cannot store one.
    # The body parsed above, so its nesting is within pydantic's limit (about 200).
    if b"\\u0000" in body:
        where = _nul(orjson.loads(body), ())
        if where is not None:
            details.append({"field": where, "reason": "NUL character (\\u0000) not allowed"})
    if details:
        return _raise_invalid(details)
    return notification


def _nul(node: Any, loc: tuple[str | int, ...]) -> str | None:
    """The path of the first key or string holding a NUL character, if any."""
    if isinstance(node, str):
        return yamlfile.dotted(loc) if "\x00" in node else None
    if isinstance(node, dict):
        for key, value in node.items():
            if "\x00" in key:
                return f"{yamlfile.dotted(loc)} (a key)"
            found = _nul(value, (*loc, key))
            if found is not None:
                return found
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found = _nul(value, (*loc, index))
            if found is not None:
                return found
    return None


def _field(loc: tuple[int | str, ...]) -> str:
    """The field's path, with an over-long key (the one refused, perhaps) shortened."""
    return yamlfile.dotted(
        [p[:61] + "..." if isinstance(p, str) and len(p) > 64 else p for p in loc]
    )


def _reason(error: Any) -> str:
    if error["type"] == "missing":
        return "required field is missing"
    if error["type"] == "literal_error" and error["loc"] == ("version",):
        return f"unsupported version {error['input']!r}; expected '4' (Alertmanager >= 0.16)"
    return str(error["msg"])


def _raise_invalid(details: list[dict[str, str]]) -> Notification:
    fields = ", ".join(d["field"] for d in details[:5])
    raise PayloadError(f"invalid Alertmanager notification: {fields}", details)
