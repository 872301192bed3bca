"""The webhook stores real Alertmanager payloads, once, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support import service as svc

FIXTURES = [
    "firing-single.json",
    "firing-group-of-3.json",
    "firing-with-one-resolved.json",
    "resolved-group.json",
    "truncated-max-alerts-2.json",
]


def alerts(service: svc.Service, **params: Any) -> list[dict[str, Any]]:
    response = service.get("/api/v1/alerts", params={"limit": 1000, **params})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


@pytest.mark.parametrize("name", FIXTURES)
def test_real_payload_is_stored_with_every_alert(service: svc.Service, name: str) -> None:
    body = svc.fixture_bytes(name)
    sent = json.loads(body)
    response = service.post(body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["alerts"] == len(sent["alerts"]) == answer["new"]
    stored = {(a["fingerprint"], a["status"]): a for a in alerts(service)}
    assert len(stored) == len(sent["alerts"])
    for alert in sent["alerts"]:
        row = stored[(alert["fingerprint"], alert["status"])]
        assert row["labels"] == alert["labels"]
        assert row["annotations"] == alert["annotations"]
        assert row["generator_url"] == alert["generatorURL"]
        assert row["alertname"] == alert["labels"]["alertname"]
        if alert["status"] == "firing":
            assert row["ends_at"] is None  # Alertmanager's 0001-01-01 means "not ended"
        else:
            assert row["ends_at"].startswith(alert["endsAt"][:19])


def test_redelivered_group_is_a_repeat_not_new_alerts(service: svc.Service) -> None:
    body = svc.fixture_bytes("firing-group-of-3.json")
    first = service.post(body).json()
    second = service.post(body).json()
    assert (first["new"], first["repeats"]) == (3, 0)
    assert (second["new"], second["repeats"]) == (0, 3)
    rows = alerts(service)
    assert len(rows) == 3
    assert all(row["deliveries"] == 2 for row in rows)
    assert rows[0]["first_notification_id"] != rows[0]["last_notification_id"]
    metrics = service.get("/metrics").text
    assert 'conea_monitor_alerts_received_total{repeat="true",status="firing"} 3.0' in metrics
    assert 'conea_monitor_alerts_received_total{repeat="false",status="firing"} 3.0' in metrics


def test_resolution_of_an_alert_is_a_new_record(service: svc.Service) -> None:
    service.post(svc.fixture_bytes("firing-group-of-3.json"))
    answer = service.post(svc.fixture_bytes("firing-with-one-resolved.json")).json()
    # Two alerts still firing (repeats) and one newly resolved.
    assert (answer["new"], answer["repeats"]) == (1, 2)
    assert len(alerts(service, status="resolved")) == 1
    assert len(alerts(service, status="firing")) == 3


def make_payload(count: int, status: str = "firing", label: str = "value") -> dict[str, Any]:
    return {
        "receiver": "conea",
        "status": status,
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": "Many", "n": str(i), "note": label},
                "annotations": {"summary": f"alert {i} {label}"},
                "startsAt": "2026-11-28T14:00:00.000Z",
                "endsAt": "0001-01-01T00:00:00Z"
                if status == "firing"
                else "2026-11-28T14:05:00.000Z",
                "generatorURL": "http://prometheus/graph",
                "fingerprint": f"{i:016x}",
            }
            for i in range(count)
        ],
        "groupLabels": {"alertname": "Many"},
        "commonLabels": {"alertname": "Many"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": '{}:{alertname="Many"}',
        "truncatedAlerts": 0,
    }


def test_many_alerts_in_one_notification(service: svc.Service) -> None:
    response = service.post(json.dumps(make_payload(500)))
    assert response.json()["new"] == 500
    assert len(alerts(service, alertname="Many")) == 500
    page = service.get("/api/v1/alerts", params={"limit": 200}).json()
    second = service.get("/api/v1/alerts", params={"limit": 200, "before": page["next"]}).json()
    ids = [a["id"] for a in page["items"] + second["items"]]
    assert len(ids) == len(set(ids)) == 400 and ids == sorted(ids, reverse=True)
    # Time range and field filters.
    assert alerts(service, since="2999-01-01T00:00:00Z") == []
    assert alerts(service, until="2000-01-01T00:00:00Z") == []
    assert len(alerts(service, since="2000-01-01T00:00:00Z", alertname="Many")) == 500
    assert [a["labels"]["n"] for a in alerts(service, fingerprint=f"{7:016x}")] == ["7"]
    assert alerts(service, alertname="Other") == []


def test_unicode_labels_round_trip(service: svc.Service) -> None:
    label = "応答なし — ñandú 🚨"
    assert service.post(json.dumps(make_payload(2, label=label))).status_code == 200
    rows = alerts(service)
    assert {r["labels"]["note"] for r in rows} == {label}
    assert rows[0]["annotations"]["summary"].endswith(label)


def test_notification_reason_and_truncation_are_kept(service: svc.Service) -> None:
    body = json.loads(svc.fixture_bytes("truncated-max-alerts-2.json"))
    body["notification_reason"] = "repeat_interval"
    response = service.post(json.dumps(body))
    assert response.status_code == 200
    assert response.json()["alerts"] == 2
    [stored] = service.get("/api/v1/notifications").json()["items"]
    assert stored["truncated_alerts"] == 1
    assert stored["notification_reason"] == "repeat_interval"
    assert stored["group_key"] == body["groupKey"]
    assert stored["alert_count"] == 2
