"""One numbering and one format on every surface, through the real service on SQLite and
PostgreSQL: steps are numbered from 1 (API, audit text, the page's history), times are a
duration back from now or ISO 8601, a closed filter's unknown value is a 400 listing the
ones it takes, audit details are JSON objects, and /api/v1/status says who paused, when
and why."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitor.store import queries
from tests.support import notifier as notifier_server
from tests.support import service as svc
from tests.support.services import wait_for

FINGERPRINT = "b150e58c5c259039"  # firing-single.json's QueueTooDeep

# Step 1 only logs; its 1s verification cannot tell without Prometheus ("not recovered"),
# so the ladder goes on to step 2, which pages.
POLICY = """
policies:
  - name: queue-too-deep
    match: ['alertname="QueueTooDeep"']
    target: {kind: Deployment, namespace: production, name: conea-api}
    steps:
      - [{action: log, with: {message: "queue deep on {{ labels.instance }}"}}]
      - [{action: notify, with: {notifier: oncall}}]
    cooldown: 0s
    verify: {window: 1s, interval: 250ms}
"""


@pytest.fixture(scope="module")
def page_inbox() -> Iterator[notifier_server.Recorder]:
    with notifier_server.running() as recorder:
        yield recorder


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def service(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    page_inbox: notifier_server.Recorder,
) -> Iterator[svc.Service]:
    tmp: Path = tmp_path_factory.mktemp(f"format-{request.param}")
    (tmp / "remediations").mkdir()
    (tmp / "remediations" / "queue.yaml").write_text(POLICY)
    config = svc.write_config(
        tmp,
        store={"url": svc.store_url(request, tmp, "conea_format")},
        policies=[str(tmp / "remediations")],
        verify_sweep_seconds=0.5,
        kubernetes={"mode": "none"},
        automation={"mode": "live"},
        notifiers={"oncall": {"kind": "webhook", "url": page_inbox.url, "retries": 0}},
    )
    page_inbox.requests.clear()
    with svc.running(config) as running:
        assert running.post(svc.fixture_bytes("firing-single.json")).status_code == 200
        wait_for(lambda: bool(page_inbox.requests), 30, "the page of step 2")
        wait_for(lambda: len(_executions(running, status="succeeded")) == 2, 30, "both steps")
        yield running


def _executions(service: svc.Service, **params: str) -> list[dict[str, Any]]:
    response = service.get("/api/v1/executions", params={"fingerprint": FINGERPRINT, **params})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _audit(service: svc.Service, **params: str) -> list[dict[str, Any]]:
    response = service.get("/api/v1/audit", params={"limit": "1000", **params})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _refused(response: httpx.Response, field: str) -> str:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == f"invalid request: {field}"
    [detail] = body["details"]
    assert detail["field"] == field
    reason: str = detail["reason"]
    return reason


def test_steps_are_numbered_from_one_on_every_surface(
    service: svc.Service, page_inbox: notifier_server.Recorder
) -> None:
    rows = sorted(_executions(service), key=lambda e: e["id"])
    assert [(e["step"], e["policy"]) for e in rows] == [(1, "queue-too-deep")] * 1 + [
        (2, "queue-too-deep")
    ]
    second = service.get(f"/api/v1/executions/{rows[1]['id']}").json()
    assert second["step"] == 2
    escalations = [a["message"] for a in _audit(service, kind="escalate")]
    assert any("to step 2 of 'queue-too-deep'" in m for m in escalations), escalations
    [page] = page_inbox.requests
    assert page["step"] == 2  # the step that pages
    assert [(h["step"], h["action"]) for h in page["history"]] == [(1, "log")]
    assert page["history"][0]["execution_id"] == str(rows[0]["id"])


def test_since_and_until_take_a_duration_back_from_now_or_an_iso_time(
    service: svc.Service,
) -> None:
    assert len(_executions(service, since="1h")) == 2
    assert _executions(service, until="1h") == []
    assert len(_executions(service, since="2026-01-01T00:00:00Z", until="0")) == 2
    assert _executions(service, since="2999-01-01") == []
    for path in ("/api/v1/alerts", "/api/v1/notifications", "/api/v1/audit"):
        response = service.get(path, params={"since": "1h"})
        assert response.status_code == 200, (path, response.text)
        assert response.json()["items"], path
    for name in ("since", "until"):
        reason = _refused(service.get("/api/v1/audit", params={name: "yesterday"}), f"query.{name}")
        assert reason == (
            "Value error, not a time or duration 'yesterday': give a duration back from now "
            "(1h, 30m, 2d) or an ISO 8601 time (2026-11-29T03:00:00Z)"
        )
    both = service.get("/api/v1/audit", params={"since": "x", "until": "y"}).json()
    assert both["error"] == "invalid request: query.since, query.until"
    reason = _refused(service.get("/api/v1/audit", params={"before": "1h"}), "query.before")
    assert reason == "not a page cursor: give a page's next (an id); for a time, use until"
    reason = _refused(service.get("/api/v1/alerts", params={"since": "100y"}), "query.since")
    assert reason == "Value error, '100y' is outside 1970..2999"


def test_an_unknown_filter_value_is_a_400_listing_the_allowed_ones(service: svc.Service) -> None:
    cases = [
        ("/api/v1/alerts", "status", "firing, resolved"),
        ("/api/v1/notifications", "status", "firing, resolved"),
        ("/api/v1/executions", "status", ", ".join(queries.CHOICES["executions"]["status"])),
        ("/api/v1/executions", "mode", "live, rehearsal"),
        ("/api/v1/audit", "kind", ", ".join(queries.AUDIT_KINDS)),
    ]
    for path, name, allowed in cases:
        reason = _refused(service.get(path, params={name: "bogus"}), f"query.{name}")
        assert reason == f"Value error, unknown value 'bogus'; one of: {allowed}", path
    assert "awaiting_approval" in queries.CHOICES["executions"]["status"]
    assert "escalate" in queries.AUDIT_KINDS


def test_known_filter_values_filter(service: svc.Service) -> None:
    assert len(_executions(service, mode="live")) == 2
    assert _executions(service, mode="rehearsal") == []
    assert _executions(service, status="failed") == []
    [firing] = service.get("/api/v1/alerts", params={"status": "firing"}).json()["items"]
    assert firing["fingerprint"] == FINGERPRINT
    assert service.get("/api/v1/alerts", params={"status": "resolved"}).json()["items"] == []
    assert {a["kind"] for a in _audit(service, kind="decision")} == {"decision"}


def test_audit_details_are_json_objects(service: svc.Service) -> None:
    records = _audit(service, fingerprint=FINGERPRINT)
    assert {a["kind"] for a in records} >= {"decision", "plan", "execute", "verify", "escalate"}
    for record in records:
        assert record["details"] is None or isinstance(record["details"], dict), record
    [first, _] = [a for a in reversed(records) if a["kind"] == "decision"]
    verdicts = first["details"]["verdicts"]
    assert isinstance(verdicts, list) and {"guardrail", "passed", "reason"} <= set(verdicts[0])
    shown = service.get(f"/api/v1/executions/{_executions(service)[-1]['id']}").json()
    assert all(a["details"] is None or isinstance(a["details"], dict) for a in shown["audit"])


def test_status_says_who_paused_when_and_why(service: svc.Service) -> None:
    status = service.get("/api/v1/status").json()
    assert (status["paused"], status["mode"]) == (False, "live")
    assert status["pause"]["paused"] is False and status["pause"]["config"] is False
    assert service.admin("/api/v1/pause", {"reason": "deploy of conea-api"}).status_code == 200
    try:
        status = service.get("/api/v1/status").json()
        pause = status["pause"]
        assert status["paused"] is True
        assert (pause["paused"], pause["by"], pause["reason"]) == (
            True,
            "operator-token",
            "deploy of conea-api",
        )
        assert pause["since"] is not None and pause["since"] == pause["at"]
    finally:
        assert service.admin("/api/v1/resume", {"reason": "deployed"}).status_code == 200
    pause = service.get("/api/v1/status").json()["pause"]
    assert (pause["paused"], pause["since"], pause["by"], pause["reason"]) == (
        False,
        None,
        "operator-token",
        "deployed",
    )


def test_a_pause_body_that_is_not_json_is_a_422_naming_the_body(service: svc.Service) -> None:
    headers = {"authorization": f"Bearer {service.operator_token()}"}
    response = httpx.post(
        f"{service.url}/api/v1/pause", content=b"stop it", headers=headers, timeout=30
    )
    assert response.status_code == 422, response.text
    [detail] = response.json()["details"]
    assert detail["field"] == "(body)" and detail["reason"].startswith("not valid JSON")
    assert service.get("/api/v1/status").json()["paused"] is False
