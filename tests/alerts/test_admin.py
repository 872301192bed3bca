"""Operator endpoints (pause, resume, reload): the operator token from every address, and
bounded, checked bodies. On SQLite and PostgreSQL (the ``service`` fixture)."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy.exc import DataError

from monitor.store import database, queries
from monitor.store import executions as store
from tests.support import service as svc
from tests.support.services import Postgres

SWITCHES = ["/api/v1/pause", "/api/v1/resume", "/-/reload"]


def _audit(service: svc.Service, kind: str) -> list[dict[str, object]]:
    items = service.get("/api/v1/audit").json()["items"]
    return [a for a in items if a["kind"] == kind]


def test_loopback_without_the_operator_token_changes_nothing(service: svc.Service) -> None:
    for path in SWITCHES:
        for authorization in (None, "Bearer", "Bearer wrong", "Basic Og==", "Token x"):
            headers = {"authorization": authorization} if authorization else {}
            response = service.post_json(path, {"reason": "x"}, headers=headers)
            assert response.status_code == 401, (path, authorization)
            assert response.headers["www-authenticate"] == "Bearer"
            assert "operator token" in response.json()["error"]
    assert service.get("/api/v1/status").json()["paused"] is False
    assert _audit(service, "pause") == []


def test_a_probe_aimed_at_the_kill_switch_does_not_pause(service: svc.Service) -> None:
    # Prometheus (or anyone who may scrape /probe) asks the service to POST to itself.
    service.get(
        "/probe",
        params={"module": "http_post_2xx", "target": f"{service.url}/api/v1/pause"},
    )
    assert service.get("/api/v1/status").json()["paused"] is False
    assert _audit(service, "pause") == []


def test_the_generated_operator_token_pauses_and_is_audited(service: svc.Service) -> None:
    response = service.admin("/api/v1/pause", {"reason": "maintenance (ticket 7)"})
    assert response.status_code == 200
    assert response.json() == {"paused": True}
    [record] = _audit(service, "pause")
    assert str(record["message"]).endswith(": maintenance (ticket 7)")
    assert service.admin("/api/v1/resume").json() == {
        "paused": False,
        "caught_up": 0,
        "message": "automation resumed; 0 alerts skipped during the pause are decided again",
    }
    assert service.admin("/-/reload").json()["status"] == "reloaded"


def test_resume_takes_catch_up_false_and_nothing_else(service: svc.Service) -> None:
    assert service.admin("/api/v1/pause").status_code == 200
    for body, field, reason in [
        ({"catch_up": "no"}, "catch_up", "must be true or false"),
        ({"catch_up": None}, "catch_up", "must be true or false"),
        ({"force": True}, "force", "unknown field; only 'reason' and 'catch_up' are accepted"),
    ]:
        response = service.admin("/api/v1/resume", body)
        assert response.status_code == 422, body
        assert response.json()["details"] == [{"field": field, "reason": reason}]
    assert service.get("/api/v1/status").json()["paused"] is True
    assert service.admin("/api/v1/resume", {"catch_up": False, "reason": "done"}).json() == {
        "paused": False,
        "caught_up": 0,
        "message": "automation resumed; 0 alerts skipped during the pause are not decided again "
        "(catch-up off)",
    }
    [record] = _audit(service, "resume")
    assert str(record["message"]).endswith(
        ": done; 0 alerts skipped during the pause are not decided again (catch-up off)"
    )
    response = service.admin("/api/v1/pause", {"catch_up": False})
    assert response.json()["details"] == [
        {"field": "catch_up", "reason": "unknown field; only 'reason' is accepted"}
    ]


BAD_REASONS = [
    ({"reason": "a\u0000b"}, "must not contain NUL or other control characters"),
    ({"reason": "line\nbreak"}, "must not contain NUL or other control characters"),
    ({"reason": "x" * 1001}, "must be at most 1000 characters"),
    ({"reason": 42}, "must be a string"),
    ({"reason": ["a"]}, "must be a string"),
]


def test_a_bad_reason_is_a_422_naming_it_and_nothing_is_paused(service: svc.Service) -> None:
    for body, reason in BAD_REASONS:
        response = service.admin("/api/v1/pause", body)
        assert response.status_code == 422, body
        assert response.json()["details"] == [{"field": "reason", "reason": reason}]
    unknown = [
        ({"force": True}, "force", "unknown field; only 'reason' is accepted"),
        ({"": 1}, "(body)", "unknown field ''; only 'reason' is accepted"),
    ]
    for body, field, reason in unknown:
        response = service.admin("/api/v1/pause", body)
        assert response.status_code == 422, body
        assert response.json()["details"] == [{"field": field, "reason": reason}]
    assert service.get("/api/v1/status").json()["paused"] is False
    assert _audit(service, "pause") == []


def test_a_reason_of_1000_characters_is_kept_whole(service: svc.Service) -> None:
    reason = "é" * 1000
    assert service.admin("/api/v1/pause", {"reason": reason}).status_code == 200
    [record] = _audit(service, "pause")
    assert str(record["message"]).endswith(": " + reason)


def test_operator_bodies_over_64_kib_are_refused(service: svc.Service) -> None:
    headers = {"authorization": f"Bearer {service.operator_token()}"}

    def chunks() -> Iterator[bytes]:
        for _ in range(80):  # no content-length: chunked, counted as it arrives
            yield b" " * 1024

    for path in SWITCHES:
        response = service.post_json(path, {"reason": "x" * (64 * 1024)}, headers=headers)
        assert response.status_code == 413, path
        assert "over the limit of 65536 bytes" in response.json()["error"]
        streamed = httpx.post(f"{service.url}{path}", content=chunks(), headers=headers, timeout=30)
        assert streamed.status_code == 413, path
    assert service.get("/api/v1/status").json()["paused"] is False


def test_the_operator_token_file_is_private_reused_and_never_logged(tmp_path: Path) -> None:
    config = svc.write_config(tmp_path)
    token_file = tmp_path / "data" / "admin-token"
    with svc.running(config) as service:
        token = service.operator_token()
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert len(token) >= 32
    with svc.running(config) as again:
        assert again.operator_token() == token  # reused across restarts
        assert again.admin("/api/v1/pause").status_code == 200
        logs = again.logs()
    assert f"operator token (pause, resume, reload) in {token_file}" in logs
    assert token not in logs


def test_the_switch_never_changes_without_its_audit_record(postgres: Postgres) -> None:
    # PostgreSQL refuses NUL in text: the audit insert fails, and the switch with it.
    url = postgres.url(postgres.create_database("conea_test_switch_audit"))
    db = database.connect(url)
    try:
        database.migrate(db)
        now = datetime.now(UTC)
        value = {"paused": True, "reason": ""}
        with pytest.raises(DataError):
            store.set_control(
                db, "paused", value, now, "api", audited=("pause", "a\x00b", "paused")
            )
        assert store.get_control(db, "paused") is None
        store.set_control(db, "paused", value, now, "api", audited=("pause", "ok", "paused"))
        assert store.get_control(db, "paused")["value"] == value  # type: ignore[index]
        records = queries.list_audit(db, queries.Filters()).items
        assert [r["kind"] for r in records] == ["pause"]
    finally:
        db.dispose()
