"""Query parameters out of range or malformed are a 400 naming the parameter, never a
500, on SQLite and PostgreSQL; rows stored with extreme times still list."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support import service as svc
from tests.support.services import Postgres


def out_of_range(value: str) -> str:
    return f"Value error, {value!r} is outside 1970..2999"


NUL = "Value error, NUL character (\\u0000) not allowed"

# (path, query parameters, the field named, the reason given)
CASES: list[tuple[str, dict[str, str], str, str]] = [
    (
        "/api/v1/alerts",
        {"before": str(2**63)},
        "query.before",
        "Input should be less than or equal to 9223372036854775807",
    ),
    (
        "/api/v1/alerts",
        {"before": "0"},
        "query.before",
        "Input should be greater than or equal to 1",
    ),
    (
        "/api/v1/executions/9223372036854775808",
        {},
        "path.execution_id",
        "Input should be less than or equal to 9223372036854775807",
    ),
    (
        "/api/v1/executions/x",
        {},
        "path.execution_id",
        "Input should be a valid integer, unable to parse string as an integer",
    ),
    (
        "/api/v1/alerts",
        {"since": "0001-01-01T00:00:00+01:00"},
        "query.since",
        out_of_range("0001-01-01T00:00:00+01:00"),
    ),
    (
        "/api/v1/notifications",
        {"until": "9999-12-31T23:59:59-01:00"},
        "query.until",
        out_of_range("9999-12-31T23:59:59-01:00"),
    ),
    (
        "/api/v1/audit",
        {"since": "1969-12-31T23:59:59"},
        "query.since",
        out_of_range("1969-12-31T23:59:59"),
    ),
    ("/api/v1/alerts", {"alertname": "x\x00y"}, "query.alertname", NUL),
    ("/api/v1/executions", {"policy": "\x00"}, "query.policy", NUL),
    ("/api/v1/audit", {"fingerprint": "a\x00"}, "query.fingerprint", NUL),
    (
        "/api/v1/alerts",
        {"fingerprint": "f" * 65},
        "query.fingerprint",
        "String should have at most 64 characters",
    ),
    (
        "/api/v1/audit",
        {"kind": "k" * 33},
        "query.kind",
        "String should have at most 32 characters",
    ),
    (
        "/api/v1/executions",
        {"limit": "1001"},
        "query.limit",
        "Input should be less than or equal to 1000",
    ),
]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[svc.Service]:
    tmp: Path = tmp_path_factory.mktemp(f"query-{request.param}")
    url = svc.store_url(request, tmp, "conea_query")
    with svc.running(svc.write_config(tmp, store={"url": url})) as running:
        running.post(svc.fixture_bytes("firing-group-of-3.json"))
        yield running


@pytest.mark.parametrize(
    ("path", "params", "field", "reason"), CASES, ids=[f"{c[0]} {c[2]}" for c in CASES]
)
def test_bad_query_parameter_is_a_400_naming_it(
    service: svc.Service, path: str, params: dict[str, str], field: str, reason: str
) -> None:
    response = service.get(path, params=params)
    assert response.status_code == 400, response.text
    assert response.json() == {
        "error": f"invalid request: {field}",
        "details": [{"field": field, "reason": reason}],
    }
    assert (
        len(service.get("/api/v1/alerts", params={"alertname": "DemoHighValue"}).json()["items"])
        == 3
    )


def test_parameters_at_the_bounds_are_answered(service: svc.Service) -> None:
    top = str(2**63 - 1)
    response = service.get(
        "/api/v1/alerts", params={"before": top, "since": "1970-01-01T00:00:00Z"}
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["items"]) == 3
    response = service.get("/api/v1/alerts", params={"until": "2999-12-31T23:59:59Z"})
    assert len(response.json()["items"]) == 3
    assert service.get(f"/api/v1/executions/{top}").status_code == 404


def test_rows_stored_with_extreme_times_still_list(postgres: Postgres, tmp_path: Path) -> None:
    """Such rows were written before payloads were bounded (PostgreSQL holds years past
    9999 and before 1, which Python cannot); a listing holding them is answered."""
    name = postgres.create_database("conea_query_extreme")
    config = svc.write_config(tmp_path, store={"url": postgres.url(name)})
    with svc.running(config) as running:
        with psycopg.connect(postgres.dsn(name), autocommit=True) as pg:
            [(nid,)] = pg.execute(
                "INSERT INTO notifications (received_at, receiver, status, group_key, "
                "truncated_alerts, alert_count) VALUES (now(), 'hook', 'firing', '{}', 0, 1) "
                "RETURNING id"
            ).fetchall()
            pg.execute(
                "INSERT INTO alerts (fingerprint, starts_at, status, alertname, labels, "
                "annotations, ends_at, generator_url, deliveries, first_notification_id, "
                "last_notification_id, first_received_at, last_received_at) VALUES "
                "('extreme', '0001-01-01 00:00:00+01:00', 'resolved', 'X', '{}', '{}', "
                "'9999-12-31 23:59:59-01:00', '', 1, %s, %s, now(), now())",
                (nid, nid),
            )
            [(eid,)] = pg.execute(
                "INSERT INTO executions (policy, step, fingerprint, starts_at, alertname, "
                "labels, target_key, target, state, dry_run, actions, verify_state, "
                "revert_state, created_at, updated_at, due_at) VALUES ('p', 0, 'extreme', "
                "'0001-01-01 00:00:00+01:00', 'X', '{}', 't', '{}', 'deferred', false, '[]', "
                "'none', 'none', now(), now(), '9999-12-31 23:59:59-01:00') RETURNING id"
            ).fetchall()
        response = running.get("/api/v1/alerts")
        assert response.status_code == 200, response.text
        [row] = response.json()["items"]
        assert row["ends_at"].startswith("9999-12-30T00:00:00")
        assert row["starts_at"].startswith("0001-01-02T00:00:00")
        response = running.get("/api/v1/executions")
        assert response.status_code == 200, response.text
        assert response.json()["items"][0]["due_at"].startswith("9999-12-30T00:00:00")
        response = running.get(f"/api/v1/executions/{eid}")
        assert response.status_code == 200, response.text
        assert response.json()["starts_at"].startswith("0001-01-02T00:00:00")
