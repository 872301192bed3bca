"""Hypothesis strategies for Alertmanager webhook bodies (version "4").

``valid_documents`` follows the real captures in ``tests/fixtures/alertmanager/``: the
service must store every one of them. ``bodies`` mixes those with hostile ones: datetimes
at and past the limits with odd offsets, integers up to and past 2**63, NUL and other
control characters, lone surrogates, very long strings, many labels and alerts, wrong
types, missing and extra fields, and bytes that are not JSON at all.
"""

from __future__ import annotations

import json
import operator
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

ZERO = "0001-01-01T00:00:00Z"

# -- valid pieces ---------------------------------------------------------------------

_FIRST = string.ascii_letters + "_"
_REST = _FIRST + string.digits
# Printable text in several scripts: no control characters, no surrogates.
_PRINTABLE = string.printable[:-5] + "éüßØłЖжΩ日本語テスト高負荷😀🚀\u00a0"


def _names(max_size: int) -> st.SearchStrategy[str]:
    return st.builds(operator.add, st.sampled_from(_FIRST), st.text(_REST, max_size=max_size))


label_names = _names(20)
printable = st.text(_PRINTABLE, max_size=40)
labels = st.dictionaries(label_names, printable, max_size=4)
fingerprints = st.integers(0, 2**64 - 1).map(lambda n: f"{n:016x}")
offsets = st.sampled_from(
    [UTC, timezone(timedelta(hours=9)), timezone(timedelta(hours=-5, minutes=-30))]
)
sane_datetimes = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1), timezones=offsets
)


def rfc3339(value: datetime) -> str:
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


_statuses = st.sampled_from(["firing", "resolved"])
_durations = st.timedeltas(timedelta(0), timedelta(days=30))
_annotations = st.dictionaries(
    st.sampled_from(["summary", "description", "runbook_url"]), printable, max_size=2
)
_alertnames = _names(15)
_receivers = st.sampled_from(["hook", "conea-monitor", "web.hook", "高負荷"])
_truncated = st.integers(0, 1000)


@st.composite
def valid_alerts(draw: st.DrawFn) -> dict[str, Any]:
    """One alert; its ``alertname`` is set by the group (``valid_documents``)."""
    starts = draw(sane_datetimes)
    status = draw(_statuses)
    ends = ZERO if status == "firing" else rfc3339(starts + draw(_durations))
    return {
        "status": status,
        "labels": {"alertname": "", **draw(labels)},
        "annotations": draw(_annotations),
        "startsAt": rfc3339(starts),
        "endsAt": ends,
        "generatorURL": "http://prometheus:9090/graph?g0.expr=" + draw(printable),
        "fingerprint": draw(fingerprints),
    }


_alert_lists = st.lists(valid_alerts(), min_size=1, max_size=4)


def _common(maps: list[dict[str, str]]) -> dict[str, str]:
    first, *rest = maps
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in rest)}


@st.composite
def valid_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A group as Alertmanager sends it (grouped by alertname, common labels computed)."""
    name = draw(_alertnames)
    alerts = draw(_alert_lists)
    for alert in alerts:
        alert["labels"]["alertname"] = name
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "receiver": draw(_receivers),
        "status": "firing" if firing else "resolved",
        "alerts": alerts,
        "groupLabels": {"alertname": name},
        "commonLabels": _common([a["labels"] for a in alerts]),
        "commonAnnotations": _common([a["annotations"] for a in alerts]),
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{name}"}}',
        "truncatedAlerts": draw(_truncated),
    }


# -- hostile pieces -------------------------------------------------------------------

ODD_TIMES = [
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+01:00",
    "0001-01-01T00:59:59+01:00",
    "0001-01-01T00:00:00-00:01",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59.999999999Z",
    "9999-12-31T23:59:59-01:00",
    "9999-12-31T23:00:00-23:59",
    "0000-12-31T23:59:59Z",
    "10000-01-01T00:00:00Z",
    "2024-02-30T00:00:00Z",
    "2024-01-01T24:00:00Z",
    "2024-01-01T00:00:60Z",
    "2024-01-01T00:00:00+24:00",
    "2024-01-01T00:00:00+99:99",
    "2024-01-01T00:00:00",
    "2024-01-01",
    "2024-01-01T00:00:00.1234567890123Z",
    "2024-01-01T00:00:00z",
    "2024-01-01 00:00:00Z",
    "",
    "now",
]
EDGE_INTS = [
    0,
    -1,
    2**31,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64,
    -(2**63),
    -(2**63) - 1,
    10**30,
    -(10**30),
    253402300800,  # 10000-01-01 as a Unix time
    -62135596801,  # before 0001-01-01 as a Unix time
]
SPECIAL_TEXT = [
    "\x00",
    "a\x00b",
    "\x01\x1b[31m\x7f",
    "\ud800",
    "\udfff\ud800",
    "\u202e\ufeff\u200b",
    "{{ 7 * 7 }}",
    "{% for x in range(10**9) %}{% endfor %}",
    "'; DROP TABLE alerts; --",
    "%s%n%x",
    "../../etc/passwd",
]

hostile_text = st.one_of(
    st.text(max_size=64),  # any code point: NUL, controls, lone surrogates
    st.sampled_from(SPECIAL_TEXT),
    st.builds(
        lambda c, n: c * n, st.sampled_from(["x", "\x00", "é", "😀"]), st.integers(0, 70_000)
    ),
)


_any_datetimes = st.one_of(
    st.datetimes(min_value=datetime.min, max_value=datetime.max),
    st.datetimes(min_value=datetime.min, max_value=datetime(1, 1, 2)),
    st.datetimes(min_value=datetime(9999, 12, 31), max_value=datetime.max),
)
_offset_minutes = st.integers(-(24 * 60) + 1, 24 * 60 - 1)


@st.composite
def odd_datetimes(draw: st.DrawFn) -> str:
    """Any naive datetime with any offset up to ±23:59, e.g. 0001-01-01T00:00:00+01:00."""
    value = draw(_any_datetimes)
    minutes = draw(_offset_minutes)
    sign = "+" if minutes >= 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    return value.isoformat() + f"{sign}{hours:02d}:{mins:02d}"


hostile_times: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(ODD_TIMES),
    odd_datetimes(),
    st.sampled_from(EDGE_INTS),
    st.floats(),
    hostile_text,
)
hostile_ints: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(EDGE_INTS), st.integers(), st.floats(), st.sampled_from(["0", "1e3", True])
)
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
hostile_labels = st.one_of(
    st.dictionaries(hostile_text, hostile_text, max_size=4),
    st.integers(0, 20_000).map(lambda n: {f"label_{i}": "v" for i in range(n)}),
    json_values,
)

# Field -> what may replace it.
NOTIFICATION_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "version": st.one_of(st.sampled_from(["3", "4 ", "", 4, None]), json_values),
    "groupKey": hostile_text,
    "truncatedAlerts": hostile_ints,
    "status": st.one_of(st.sampled_from(["FIRING", "pending", ""]), json_values),
    "receiver": hostile_text,
    "groupLabels": hostile_labels,
    "commonLabels": hostile_labels,
    "commonAnnotations": hostile_labels,
    "externalURL": hostile_text,
    "notificationReason": st.one_of(hostile_text, json_values),
    "alerts": st.one_of(json_values, st.builds(list)),
}
ALERT_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "status": st.one_of(st.sampled_from(["firing ", "inactive", ""]), json_values),
    "labels": hostile_labels,
    "annotations": hostile_labels,
    "startsAt": hostile_times,
    "endsAt": hostile_times,
    "generatorURL": hostile_text,
    "fingerprint": st.one_of(hostile_text, st.just("")),
}


_many = st.integers(100, 6_000)
_indices = st.integers(0, 3)
_how_many = st.integers(1, 3)
_hows = st.sampled_from(["replace", "replace", "replace", "delete", "extra"])
_extra_keys = st.text(max_size=12)
_wheres = st.sampled_from(["notification", "alert", "alert", "both", "many alerts"])
_notification_names = st.sampled_from(sorted(NOTIFICATION_FIELDS))
_alert_names = st.sampled_from(sorted(ALERT_FIELDS))


@st.composite
def _corrupt(draw: st.DrawFn, document: dict[str, Any], fields: dict[str, Any], names: Any) -> None:
    """Replace, delete or add a few fields of ``document`` in place."""
    for _ in range(draw(_how_many)):
        name = draw(names)
        how = draw(_hows)
        if how == "replace":
            document[name] = draw(fields[name])
        elif how == "delete":
            document.pop(name, None)
        else:
            document[draw(_extra_keys)] = draw(json_values)


@st.composite
def hostile_documents(draw: st.DrawFn) -> Any:
    document = draw(valid_documents())
    where = draw(_wheres)
    if where in ("notification", "both"):
        draw(_corrupt(document, NOTIFICATION_FIELDS, _notification_names))
    alerts = document.get("alerts")
    if where in ("alert", "both") and isinstance(alerts, list) and alerts:
        index = draw(_indices) % len(alerts)
        if isinstance(alerts[index], dict):
            draw(_corrupt(alerts[index], ALERT_FIELDS, _alert_names))
        else:
            alerts[index] = draw(json_values)
    if where == "many alerts":
        count = draw(_many)
        template = draw(valid_alerts())
        template["labels"]["alertname"] = document["groupLabels"]["alertname"]
        document["alerts"] = [{**template, "fingerprint": f"{i:016x}"} for i in range(count)]
    return document


@dataclass(frozen=True)
class Body:
    """A request body and whether it came from the valid strategy."""

    data: bytes
    valid: bool

    def __repr__(self) -> str:
        shown = self.data[:600]
        more = f"... ({len(self.data)} bytes)" if len(self.data) > 600 else ""
        return f"Body(valid={self.valid}, data={shown!r}{more})"


def _encode(document: Any, ensure_ascii: bool) -> bytes:
    # ensure_ascii sends lone surrogates as \\udXXX escapes; without it they become
    # bytes that are not UTF-8.
    return json.dumps(document, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass")


valid_bodies = st.builds(
    lambda d, a: Body(_encode(d, a), valid=True), valid_documents(), st.booleans()
)
_not_json = st.one_of(
    st.binary(max_size=200),
    st.sampled_from([b"", b"null", b"[]", b'"4"', b"{", b'{"version": "4",', b"\xef\xbb\xbf{}"]),
    st.builds(lambda n: b"[" * n, st.integers(1, 100_000)),
)
_hostile_bodies = st.builds(
    lambda d, a: Body(_encode(d, a), valid=False), hostile_documents(), st.booleans()
)
bodies = st.one_of(
    valid_bodies,
    _hostile_bodies,
    _hostile_bodies,
    _hostile_bodies,
    st.builds(lambda d: Body(d, valid=False), _not_json),
    st.builds(lambda d: Body(_encode(d, True), valid=False), json_values),
)


def _capture_with(**changes: Any) -> Body:
    """The real single-alert capture with top-level or first-alert fields changed."""
    document: dict[str, Any] = json.loads(CAPTURE)
    alert = document["alerts"][0]
    for name, value in changes.items():
        (alert if name in alert else document)[name] = value
    return Body(json.dumps(document).encode("utf-8", "surrogatepass"), valid=False)


CAPTURE = (
    Path(__file__).resolve().parent.parent / "fixtures" / "alertmanager" / "firing-single.json"
).read_text()

#: Inputs every run tries first (hypothesis "explicit" examples): the edges the issue names.
EXPLICIT = [
    _capture_with(startsAt="0001-01-01T00:00:00+01:00"),
    _capture_with(endsAt="9999-12-31T23:59:59-01:00"),
    _capture_with(startsAt="9999-12-31T23:59:59Z"),
    _capture_with(truncatedAlerts=2**63),
    _capture_with(truncatedAlerts=2**64),
    _capture_with(labels={"alertname": "a\x00b"}),
    _capture_with(annotations={"summary": "\x00"}),
    _capture_with(fingerprint="\ud800"),
    _capture_with(labels={"alertname": "x" * 500_000}),
    _capture_with(labels={f"label_{i}": "v" for i in range(20_000)}),
]
