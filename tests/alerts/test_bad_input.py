"""Every kind of bad webhook input: its exact status and message, and nothing stored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import service as svc

GOOD = json.loads(svc.fixture_bytes("firing-group-of-3.json"))


def mutate(**changes: Any) -> bytes:
    body = json.loads(json.dumps(GOOD))
    for path, value in changes.items():
        node = body
        *parents, last = path.split("__")
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is KeyError:
            del node[int(last) if last.isdigit() else last]
        else:
            node[int(last) if last.isdigit() else last] = value
    return json.dumps(body).encode()


BIG = mutate(commonAnnotations={"big": "x" * 5000})

CASES: list[tuple[str, bytes, dict[str, str], int, dict[str, Any]]] = [
    ("malformed json", b'{"version": "4",', {}, 400, {"error": "body is not valid JSON"}),
    (
        "json array",
        b"[]",
        {},
        400,
        {
            "error": "body must be a JSON object",
            "details": [{"field": "(top level)", "reason": "Input should be an object"}],
        },
    ),
    (
        "wrong version",
        mutate(version="3"),
        {},
        422,
        {
            "error": "invalid Alertmanager notification: version",
            "details": [
                {
                    "field": "version",
                    "reason": "unsupported version '3'; expected '4' (Alertmanager >= 0.16)",
                }
            ],
        },
    ),
    (
        "missing groupKey",
        mutate(groupKey=KeyError),
        {},
        422,
        {
            "error": "invalid Alertmanager notification: groupKey",
            "details": [{"field": "groupKey", "reason": "required field is missing"}],
        },
    ),
    (
        "missing alert fingerprint",
        mutate(alerts__1__fingerprint=KeyError),
        {},
        422,
        {
            "error": "invalid Alertmanager notification: alerts[1].fingerprint",
            "details": [{"field": "alerts[1].fingerprint", "reason": "required field is missing"}],
        },
    ),
    (
        "label value not a string",
        mutate(alerts__0__labels={"alertname": 5}),
        {},
        422,
        {
            "error": "invalid Alertmanager notification: alerts[0].labels.alertname",
            "details": [
                {"field": "alerts[0].labels.alertname", "reason": "Input should be a valid string"}
            ],
        },
    ),
    (
        "bad startsAt",
        mutate(alerts__2__startsAt="yesterday"),
        {},
        422,
        {
            "error": "invalid Alertmanager notification: alerts[2].startsAt",
            "details": [
                {
                    "field": "alerts[2].startsAt",
                    "reason": "Input should be a valid datetime or date, input is too short",
                }
            ],
        },
    ),
    (
        "unknown status",
        mutate(alerts__0__status="pending"),
        {},
        422,
        {
            "error": "invalid Alertmanager notification: alerts[0].status",
            "details": [
                {"field": "alerts[0].status", "reason": "Input should be 'firing' or 'resolved'"}
            ],
        },
    ),
    (
        "negative truncatedAlerts",
        mutate(truncatedAlerts=-1),
        {},
        422,
        {
            "error": "invalid Alertmanager notification: truncatedAlerts",
            "details": [
                {"field": "truncatedAlerts", "reason": "Input should be greater than or equal to 0"}
            ],
        },
    ),
    (
        "alerts not a list",
        mutate(alerts={}),
        {},
        422,
        {
            "error": "invalid Alertmanager notification: alerts",
            "details": [{"field": "alerts", "reason": "Input should be a valid array"}],
        },
    ),
    (
        "text content type",
        json.dumps(GOOD).encode(),
        {"content-type": "text/plain"},
        415,
        {"error": "content type must be application/json, got 'text/plain'"},
    ),
    (
        "form content type",
        json.dumps(GOOD).encode(),
        {"content-type": "application/x-www-form-urlencoded"},
        415,
        {"error": "content type must be application/json, got 'application/x-www-form-urlencoded'"},
    ),
    (
        "over the size limit",
        BIG,
        {},
        413,
        {"error": f"body of {len(BIG)} bytes is over the limit of 4096 bytes"},
    ),
]


@pytest.fixture(scope="module")
def small_limit_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[svc.Service]:
    tmp: Path = tmp_path_factory.mktemp("bad-input")
    config = svc.write_config(tmp, webhook={"max_body_bytes": 4096})
    with svc.running(config) as service:
        yield service


@pytest.mark.parametrize(
    ("case", "body", "headers", "status", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_input_is_refused_with_its_reason(
    small_limit_service: svc.Service,
    case: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    expected: dict[str, Any],
) -> None:
    service = small_limit_service
    before = service.get("/api/v1/notifications").json()["items"]
    response = service.post(body, headers=headers)
    assert response.status_code == status, response.text
    answer = response.json()
    if case == "malformed json":
        assert answer["error"] == expected["error"]
        assert answer["details"][0]["field"] == "(body)"
        assert "EOF while parsing" in answer["details"][0]["reason"]
    else:
        assert answer == expected
    assert "Traceback" not in response.text
    assert service.get("/api/v1/notifications").json()["items"] == before
    assert service.get("/api/v1/alerts").json()["items"] == []


def test_chunked_body_over_the_limit_is_cut_off(small_limit_service: svc.Service) -> None:
    import httpx

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"x" * 1000

    response = httpx.post(
        f"{small_limit_service.url}/webhook/alertmanager",
        content=chunks(),
        headers={"content-type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 413
    assert response.json() == {"error": "body is over the limit of 4096 bytes"}


def test_bad_query_parameters_are_a_400_with_the_field(
    small_limit_service: svc.Service,
) -> None:
    response = small_limit_service.get("/api/v1/alerts", params={"limit": 0})
    assert response.status_code == 400
    assert response.json()["details"][0]["field"] == "query.limit"
    response = small_limit_service.get("/api/v1/alerts", params={"status": "sleeping"})
    assert response.status_code == 400
    assert response.json()["details"][0]["field"] == "query.status"
