"""Values the store cannot hold are refused at the edge (422 naming the field), on SQLite
and PostgreSQL alike, and the next good webhook is stored: one request cannot wedge intake."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.alerts import payload
from tests.alerts.test_bad_input import mutate
from tests.support import service as svc

AT_MOST = "String should have at most {} characters"
NUL = "NUL character (\\u0000) not allowed"

# (case, changes to a good payload, the field named, the reason given)
CASES: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "startsAt before year 1 in UTC",
        {"alerts__0__startsAt": "0001-01-01T00:00:00+01:00"},
        "alerts[0].startsAt",
        "Input should be greater than or equal to 1970-01-01T00:00:00Z",
    ),
    (
        "startsAt after year 9999 in UTC",
        {"alerts__0__startsAt": "9999-12-31T23:59:59-01:00"},
        "alerts[0].startsAt",
        "Input should be less than 3000-01-01T00:00:00Z",
    ),
    (
        "endsAt after year 9999 in UTC",
        {"alerts__1__endsAt": "9999-12-31T23:59:59-01:00"},
        "alerts[1].endsAt",
        "Input should be less than 3000-01-01T00:00:00Z",
    ),
    (
        "endsAt before year 1 in UTC",
        {"alerts__1__endsAt": "0001-01-01T00:00:00+01:00"},
        "alerts[1].endsAt",
        "Input should be greater than or equal to 0001-01-01T00:00:00Z",
    ),
    (
        "endsAt neither zero nor in range",
        {"alerts__1__endsAt": "1969-12-31T23:59:59Z"},
        "alerts[1].endsAt",
        "Input should be 0001-01-01T00:00:00Z (not ended) "
        "or greater than or equal to 1970-01-01T00:00:00Z",
    ),
    (
        "truncatedAlerts 2^63",
        {"truncatedAlerts": 2**63},
        "truncatedAlerts",
        "Input should be less than or equal to 2147483647",
    ),
    (
        "truncatedAlerts 2^31",
        {"truncatedAlerts": 2**31},
        "truncatedAlerts",
        "Input should be less than or equal to 2147483647",
    ),
    ("NUL in a label value", {"alerts__1__labels__pod": "a\x00b"}, "alerts[1].labels.pod", NUL),
    ("NUL in a label name", {"groupLabels": {"a\x00": "x"}}, "groupLabels (a key)", NUL),
    ("NUL in the fingerprint", {"alerts__2__fingerprint": "ab\x00"}, "alerts[2].fingerprint", NUL),
    ("NUL in the receiver", {"receiver": "hook\x00"}, "receiver", NUL),
    (
        "NUL in the alertname",
        {"alerts__0__labels__alertname": "x\x00y"},
        "alerts[0].labels.alertname",
        NUL,
    ),
    (
        "fingerprint over 64 characters",
        {"alerts__2__fingerprint": "f" * 65},
        "alerts[2].fingerprint",
        AT_MOST.format(64),
    ),
    (
        "alertname over 255 characters",
        {"alerts__0__labels__alertname": "A" * 256},
        "alerts[0].labels.alertname",
        AT_MOST.format(255),
    ),
    ("receiver over 255 characters", {"receiver": "r" * 256}, "receiver", AT_MOST.format(255)),
    (
        "notification_reason over 64 characters",
        {"notification_reason": "r" * 65},
        "notification_reason",
        AT_MOST.format(64),
    ),
    (
        "label value over 4096 characters",
        {"alerts__0__labels__pod": "p" * 4097},
        "alerts[0].labels.pod",
        AT_MOST.format(4096),
    ),
    (
        "more than 256 labels",
        {"commonLabels": {f"l{i}": "v" for i in range(257)}},
        "commonLabels",
        "Dictionary should have at most 256 items after validation, not more",
    ),
]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def bounded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[svc.Service]:
    tmp: Path = tmp_path_factory.mktemp(f"bounds-{request.param}")
    url = svc.store_url(request, tmp, "conea_bounds")
    with svc.running(svc.write_config(tmp, store={"url": url})) as service:
        yield service


def good(fingerprint: str) -> bytes:
    body = json.loads(svc.fixture_bytes("firing-single.json"))
    body["alerts"][0]["fingerprint"] = fingerprint
    return json.dumps(body).encode()


@pytest.mark.parametrize(("case", "changes", "field", "reason"), CASES, ids=[c[0] for c in CASES])
def test_value_the_store_cannot_hold_is_a_422_and_intake_goes_on(
    bounded: svc.Service, case: str, changes: dict[str, Any], field: str, reason: str
) -> None:
    response = bounded.post(mutate(**changes))
    assert response.status_code == 422, response.text
    assert response.json() == {
        "error": f"invalid Alertmanager notification: {field}",
        "details": [{"field": field, "reason": reason}],
    }
    fingerprint = f"after-{CASES.index((case, changes, field, reason))}"
    after = bounded.post(good(fingerprint))
    assert after.status_code == 200, after.text
    stored = bounded.get("/api/v1/alerts", params={"fingerprint": fingerprint}).json()
    assert [a["fingerprint"] for a in stored["items"]] == [fingerprint]
    assert bounded.get("/readyz").status_code == 200


def test_values_at_the_bounds_are_stored(bounded: svc.Service) -> None:
    body = json.loads(good("b" * 64))
    alert = body["alerts"][0]
    alert["labels"]["alertname"] = "A" * 255
    alert["startsAt"] = "1970-01-01T00:00:00Z"
    alert["endsAt"] = "2999-12-31T23:59:59.999Z"
    alert["status"] = "resolved"
    body.update(receiver="r" * 255, truncatedAlerts=2**31 - 1, notification_reason="n" * 64)
    response = bounded.post(json.dumps(body))
    assert response.status_code == 200, response.text
    [row] = bounded.get("/api/v1/alerts", params={"fingerprint": "b" * 64}).json()["items"]
    assert row["alertname"] == "A" * 255
    assert row["starts_at"].startswith("1970-01-01T00:00:00")
    assert row["ends_at"].startswith("2999-12-31T23:59:59.999")
    notification = bounded.get("/api/v1/notifications").json()["items"][0]
    assert notification["truncated_alerts"] == 2**31 - 1


def test_more_alerts_than_a_notification_may_hold_are_refused() -> None:
    body = json.loads(svc.fixture_bytes("firing-single.json"))
    body["alerts"] = body["alerts"] * (payload.MAX_ALERTS + 1)
    with pytest.raises(payload.PayloadError) as refused:
        payload.parse(json.dumps(body).encode())
    assert refused.value.details == [
        {
            "field": "alerts",
            "reason": "List should have at most 10000 items after validation, not 10001",
        }
    ]
    body["alerts"] = body["alerts"][: payload.MAX_ALERTS]
    assert len(payload.parse(json.dumps(body).encode()).alerts) == payload.MAX_ALERTS
