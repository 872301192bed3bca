"""Fuzzing the running service: webhook bodies, the admin switches, the query API.

One served app per store (SQLite, PostgreSQL); the tests run in this order against it
and the last one checks that, after everything, it still stores and answers a valid
webhook, and that the number of cases sent reached the target (``budget.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import pytest
import requests
import schemathesis
from hypothesis import example, given
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import content_type_conformance

from monitor.alerts import payload
from tests.fuzz import budget, payloads
from tests.fuzz.budget import fuzz_settings
from tests.fuzz.findings import Findings, Hang
from tests.fuzz.server import ADMIN_TOKEN, REQUEST_TIMEOUT, WEBHOOK_TOKEN, Running
from tests.support import service as svc

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]


Answer = TypeVar("Answer", httpx.Response, requests.Response, schemathesis.Response)


def _send(
    service: Running,
    findings: Findings,
    request: str | Callable[[], str],
    call: Callable[[], Answer],
) -> Answer | None:
    """The answer to ``call()``, counted as a case; a dropped connection is a finding
    (None), a hang stops the run, and after a hang every case fails at once."""
    if service.hung:
        raise Hang(f"the service stopped answering earlier, at: {service.hung[:300]}")
    try:
        response = call()
    except (httpx.TimeoutException, requests.Timeout):
        service.hung = request if isinstance(request, str) else request()
        findings.add("hang", request, None, f"no answer in {REQUEST_TIMEOUT}s")
        raise Hang(findings.report()) from None
    except (httpx.TransportError, requests.ConnectionError) as exc:
        findings.add("connection dropped", request, None, repr(exc))
        return None
    service.cases += 1
    return response


def _examples(name: str, values: list[Any]) -> Any:
    """Hypothesis ``@example`` for each value (tried before anything generated)."""

    def decorate(test: Any) -> Any:
        for value in reversed(values):
            test = example(**{name: value})(test)
        return test

    return decorate


def _json(response: httpx.Response | requests.Response | schemathesis.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:400]


def _switched(answer: Any, paused: bool) -> bool:
    """A switch's answer: the state, and after a pause's resume what became of the alerts
    skipped during it (``caught_up``, ``message``)."""
    if not isinstance(answer, dict) or answer.get("paused") is not paused:
        return False
    extra = set(answer) - {"paused"}
    return not extra if paused else extra <= {"caught_up", "message"}


def _names_a_field(status: int, body: Any) -> bool:
    """A 4xx body says what was wrong: an error, and for 422 the fields in ``details``."""
    if not isinstance(body, dict) or not body.get("error"):
        return False
    if status != 422:
        return True
    details = body.get("details") or []
    return bool(details) and all(
        isinstance(d, dict) and d.get("field") and d.get("reason") for d in details
    )


# -- webhook ---------------------------------------------------------------------------


def test_webhook_payloads(service: Running, backend: str) -> None:
    limit = service.settings.webhook.max_body_bytes
    findings = Findings()

    @_examples("body", payloads.EXPLICIT)
    @fuzz_settings(budget.examples(backend, "webhook"))
    @given(body=payloads.bodies)
    def run(body: payloads.Body) -> None:
        request = f"POST /webhook/alertmanager {body!r}"
        response = _send(
            service,
            findings,
            request,
            lambda: service.client.post(
                "/webhook/alertmanager", content=body.data, headers=service.webhook_headers
            ),
        )
        if response is None:
            return
        status, answer = response.status_code, _json(response)
        try:
            alerts: int | None = len(payload.parse(body.data).alerts)
        except payload.PayloadError:
            alerts = None
        if status >= 500:
            findings.add("webhook 5xx", request, status, answer)
        elif len(body.data) > limit:
            if status != 413:
                findings.add("webhook body over the limit not 413", request, status, answer)
        elif status == 200:
            if alerts is None:
                findings.add("webhook 200 for a payload the model rejects", request, status, answer)
            elif not isinstance(answer, dict) or answer.get("alerts") != alerts:
                findings.add("webhook 200 with the wrong alert count", request, status, answer)
        elif body.valid:
            findings.add("webhook refused a valid payload", request, status, answer)
        elif not 400 <= status < 500 or not _names_a_field(status, answer):
            findings.add("webhook 4xx that names no field", request, status, answer)

    run()
    assert not findings.seen, findings.report()


# -- admin: pause, resume, reload --------------------------------------------------------

ADMIN_PATHS = ["/api/v1/pause", "/api/v1/resume", "/-/reload"]
CREDENTIALS = {
    "operator token": f"Bearer {ADMIN_TOKEN}",
    "none": None,
    "webhook token": f"Bearer {WEBHOOK_TOKEN}",
    "wrong token": f"Bearer {ADMIN_TOKEN}x",
    "bare scheme": "Bearer",
    "basic": "Basic Zm9vOmJhcg==",
}
admin_bodies = st.one_of(
    st.just(b""),
    st.builds(
        lambda r: json.dumps({"reason": r}).encode("utf-8", "surrogatepass"), payloads.hostile_text
    ),
    st.builds(lambda v: json.dumps(v).encode(), payloads.json_values),
    st.binary(max_size=100),
    st.builds(
        lambda n: json.dumps({"reason": "r" * n}).encode(), st.integers(1 << 20, (1 << 20) + 4096)
    ),
)


def test_admin_switches(service: Running, backend: str) -> None:
    limit = service.settings.webhook.max_body_bytes
    findings = Findings()

    @example(path="/api/v1/pause", who="operator token", body=b'{"reason": "a\\u0000b"}')
    @example(path="/api/v1/pause", who="operator token", body=b'{"reason": "%s"}' % (b"r" * 2**21))
    @example(path="/-/reload", who="none", body=b"")
    @fuzz_settings(budget.examples(backend, "admin"))
    @given(
        path=st.sampled_from(ADMIN_PATHS),
        who=st.sampled_from(sorted(CREDENTIALS)),
        body=admin_bodies,
    )
    def run(path: str, who: str, body: bytes) -> None:
        request = f"POST {path} as {who!r} body={body[:300]!r} ({len(body)} bytes)"
        credential = CREDENTIALS[who]
        headers = {"content-type": "application/json"}
        if credential is not None:
            headers["authorization"] = credential
        response = _send(
            service,
            findings,
            request,
            lambda: service.client.post(path, content=body, headers=headers),
        )
        if response is None:
            return
        status, answer = response.status_code, _json(response)
        if status >= 500:
            findings.add(f"{path} 5xx", request, status, answer)
        elif who != "operator token":
            # the webhook's token is a credential, of a role that may not do this: 403
            expected = 403 if who == "webhook token" else 401
            if status != expected:
                findings.add(
                    f"{path} without the operator token not {expected}", request, status, answer
                )
        elif status == 200:
            if len(body) > limit:
                findings.add(f"{path} accepted a body over {limit} bytes", request, status, answer)
            elif path != "/-/reload" and not _switched(answer, path.endswith("pause")):
                findings.add(f"{path} answered the wrong state", request, status, answer)
        elif not 400 <= status < 500 or not _names_a_field(status, answer):
            findings.add(f"{path} 4xx that names no field", request, status, answer)

    run()
    assert not findings.seen, findings.report()


# -- query and admin API from the OpenAPI schema ------------------------------------------

QUERY_PATHS = (
    r"^/api/v1/(alerts|notifications|executions|executions/\{execution_id\}|audit|status"
    r"|pause|resume)$|^/-/reload$"
)
ADMIN_OPERATIONS = ("/api/v1/pause", "/api/v1/resume", "/-/reload")
# Not response_schema_conformance: FastAPI documents these routes' 200 as a string
# (they return a Response), so every listing would "violate" it. Not
# negative_data_rejection: pydantic takes a number as a Unix time where the schema
# says date-time (``since=0.0``), which is lenient, not wrong.
CHECKS = [not_a_server_error, content_type_conformance]


def _leaves(group: BaseExceptionGroup[AssertionError]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        found.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return found


def test_query_api_schema(service: Running, backend: str) -> None:
    schema = schemathesis.openapi.from_url(
        f"{service.url}/openapi.json", headers=service.admin_headers
    ).include(path_regex=QUERY_PATHS)
    cases = st.one_of(
        schema.as_strategy(GenerationMode.POSITIVE), schema.as_strategy(GenerationMode.NEGATIVE)
    )
    findings = Findings()
    session = requests.Session()

    @fuzz_settings(budget.examples(backend, "query"))
    @given(case=cases, with_token=st.booleans())
    def run(case: schemathesis.Case, with_token: bool) -> None:
        headers = dict(service.admin_headers) if with_token else {}

        def request() -> str:
            return case.as_curl_command(headers=headers)

        response = _send(
            service,
            findings,
            request,
            lambda: case.call(
                base_url=service.url, session=session, headers=headers, timeout=REQUEST_TIMEOUT
            ),
        )
        if response is None:
            return
        status, answer = response.status_code, _json(response)
        admin = case.path in ADMIN_OPERATIONS
        if admin and not with_token and status != 401:
            findings.add(f"{case.path} without the operator token not 401", request, status, answer)
        if not admin and not with_token and status != 401:  # webhook credentials are set
            findings.add(f"{case.path} read without a credential not 401", request, status, answer)
        if 400 <= status < 500 and not _names_a_field(status, answer):
            findings.add(f"{case.path} 4xx that names no field", request, status, answer)
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except* AssertionError as group:
            for failure in _leaves(group):
                title = getattr(failure, "title", None) or str(failure).strip()[:120]
                findings.add(f"{case.method} {case.path}: {title}", request, status, answer)

    try:
        run()
    finally:
        session.close()
    assert not findings.seen, findings.report()


# -- afterwards ---------------------------------------------------------------------------


def test_still_stores_and_answers(service: Running, backend: str) -> None:
    """After the fuzz run the same app stores a real capture and lists its alert."""
    body = json.loads(svc.fixture_bytes("firing-single.json"))
    body["alerts"][0]["fingerprint"] = "f0220f0220f02200"
    response = service.client.post(
        "/webhook/alertmanager", content=json.dumps(body), headers=service.webhook_headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["alerts"] == 1
    listed = service.client.get(
        "/api/v1/alerts",
        params={"fingerprint": "f0220f0220f02200"},
        headers=service.admin_headers,  # webhook credentials are set: reading needs one
    )
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert [item["fingerprint"] for item in items] == ["f0220f0220f02200"]
    assert items[0]["alertname"] == "QueueTooDeep"
    assert service.cases >= budget.required(backend), (
        f"only {service.cases} fuzz cases reached the {backend} service; "
        f"{budget.required(backend)} are required"
    )
