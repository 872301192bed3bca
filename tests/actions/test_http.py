"""http.request against a real local HTTP server."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
import pytest
from pydantic import ValidationError

from monitor import secrets
from monitor.actions import http as http_actions
from monitor.actions import registry
from monitor.actions import runner as action_runner
from monitor.alerts import context
from monitor.errors import PermanentActionError, TemporaryActionError
from tests.actions.conftest import FakeApi, Reply, Sleeps

TOKEN = "cf-token-Zk29xQ-very-secret"


@pytest.fixture
def ctx() -> registry.ActionContext:
    return registry.ActionContext(alert=None, target={}, services=registry.Services())


@pytest.fixture
def action() -> http_actions.Request:
    reg = registry.Registry()
    http_actions.register(reg)
    found = reg.get("http.request")
    assert isinstance(found, http_actions.Request)
    return found


def purge_params(api: FakeApi, **extra: object) -> http_actions.RequestParams:
    """The CDN purge as the bundled policy writes it (see docs/actions.md)."""
    raw = {
        "method": "POST",
        "url": api.url("/client/v4/zones/023e105f4ecef8ad9ca31a8372d0c353/purge_cache"),
        "auth": {"bearer": {"env": "CF_API_TOKEN"}},
        "body": {"purge_everything": True},
        "retries": 3,
        "backoff": 0.5,
        **extra,
    }
    return http_actions.RequestParams.model_validate(raw)


async def test_cdn_purge_sends_bearer_token_and_json_and_keeps_it_out_of_the_record(
    fake_api: FakeApi,
    action: http_actions.Request,
    ctx: registry.ActionContext,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("CF_API_TOKEN", TOKEN)
    params = purge_params(fake_api)
    plan = await action.plan(params, ctx)
    assert plan.details["request"]["headers"]["Authorization"] == "Bearer <secret env:CF_API_TOKEN>"
    assert plan.details["request"]["body"] == {"purge_everything": True}
    assert fake_api.received == []  # planning sends nothing

    outcome = await action.apply(params, ctx, plan)
    [got] = fake_api.received
    assert got.method == "POST"
    assert got.path == "/client/v4/zones/023e105f4ecef8ad9ca31a8372d0c353/purge_cache"
    assert got.headers["Authorization"] == f"Bearer {TOKEN}"
    assert got.headers["Content-Type"] == "application/json"
    assert got.json() == {"purge_everything": True}
    assert outcome.details["status"] == 200
    assert outcome.details["response"] == {"success": True, "errors": []}
    for recorded in (plan.model_dump_json(), outcome.model_dump_json(), caplog.text):
        assert TOKEN not in recorded
    assert "-> HTTP 200" in caplog.text


async def test_retries_5xx_and_429_honouring_retry_after(
    fake_api: FakeApi,
    action: http_actions.Request,
    runner: action_runner.ActionRunner,
    sleeps: Sleeps,
    ctx: registry.ActionContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CF_API_TOKEN", TOKEN)
    fake_api.replies = [
        Reply(503, "busy"),
        Reply(429, "slow down", {"Retry-After": "7"}),
        Reply(200),
    ]
    params = purge_params(fake_api)
    outcome = await runner.apply(action, params, ctx, await action.plan(params, ctx))
    assert len(fake_api.received) == 3
    assert all(r.json() == {"purge_everything": True} for r in fake_api.received)
    assert outcome.details["status"] == 200
    assert sleeps == [0.5, 7.0]  # backoff, then the server's Retry-After


async def test_a_4xx_is_not_retried_and_the_echoed_token_is_redacted(
    fake_api: FakeApi,
    action: http_actions.Request,
    runner: action_runner.ActionRunner,
    sleeps: Sleeps,
    ctx: registry.ActionContext,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("CF_API_TOKEN", TOKEN)
    fake_api.replies = [Reply(403, echo_auth=True)]
    params = purge_params(fake_api)
    with pytest.raises(PermanentActionError, match="HTTP 403, expected 2xx") as info:
        await runner.apply(action, params, ctx, await action.plan(params, ctx))
    assert len(fake_api.received) == 1
    assert sleeps == []
    assert "token Bearer <redacted> is not allowed" in str(info.value)
    assert TOKEN not in str(info.value) and TOKEN not in caplog.text


async def test_send_makes_one_request_on_a_503(
    fake_api: FakeApi, ctx: registry.ActionContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CF_API_TOKEN", TOKEN)
    fake_api.replies = [Reply(503, "busy", {"Retry-After": "4"})] * 3
    redactor = secrets.Redactor()
    request = http_actions.prepare(purge_params(fake_api), redactor)
    async with httpx.AsyncClient() as client:
        with pytest.raises(TemporaryActionError, match="HTTP 503: busy") as info:
            await http_actions.send(
                client,
                request,
                request_timeout=5,
                expected=lambda status: 200 <= status < 300,
                redactor=redactor,
                log=logging.getLogger("test"),
            )
    assert len(fake_api.received) == 1  # nothing below the runner retries
    assert info.value.delay == 4


async def test_retries_two_through_the_runner_is_three_requests(
    fake_api: FakeApi,
    action: http_actions.Request,
    runner: action_runner.ActionRunner,
    sleeps: Sleeps,
    ctx: registry.ActionContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CF_API_TOKEN", TOKEN)
    fake_api.replies = [Reply(503, "busy")] * 5
    params = purge_params(fake_api, retries=2, backoff=1, max_backoff=1.5)
    with pytest.raises(TemporaryActionError, match="HTTP 503: busy") as info:
        await runner.apply(action, params, ctx, await action.plan(params, ctx))
    assert len(fake_api.received) == 3
    assert sleeps == [1.0, 1.5]  # exponential, capped at max_backoff
    assert info.value.delay == 1.0  # no Retry-After: the backoff


async def test_a_long_retry_after_goes_back_to_the_engine(
    fake_api: FakeApi,
    action: http_actions.Request,
    runner: action_runner.ActionRunner,
    sleeps: Sleeps,
    ctx: registry.ActionContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CF_API_TOKEN", TOKEN)
    fake_api.replies = [Reply(429, "rate limited", {"Retry-After": "300"})]
    params = purge_params(fake_api, max_retry_after=60)
    with pytest.raises(TemporaryActionError) as info:
        await runner.apply(action, params, ctx, await action.plan(params, ctx))
    assert len(fake_api.received) == 1 and sleeps == []
    assert info.value.delay == 300


def test_the_parameters_make_the_runners_rules(ctx: registry.ActionContext) -> None:
    """``retries``, ``backoff``, ``max_backoff``, ``max_retry_after`` and ``timeout`` keep
    their meaning: they are the retry policy and the try's timeout the runner applies."""
    action = http_actions.Request()
    params = http_actions.RequestParams.model_validate(
        {"url": "http://x", "retries": 4, "backoff": 2, "max_backoff": 5, "timeout": "20s"}
    )
    policy = action.retry_policy(params, ctx)
    assert policy is not None
    assert (policy.attempts, policy.first, policy.factor, policy.cap, policy.max_hint) == (
        5,
        2.0,
        2.0,
        5.0,
        60.0,
    )
    assert policy.deadline >= 5 * (20 + http_actions.TIMEOUT_MARGIN) + 4 * 60
    assert action.attempt_timeout(params, ctx) == 20 + http_actions.TIMEOUT_MARGIN


async def test_expect_status_and_text_body_with_inline_file_secret(
    fake_api: FakeApi, action: http_actions.Request, ctx: registry.ActionContext, tmp_path: Path
) -> None:
    key = tmp_path / "api-key"
    key.write_text("file-secret-abcdef\n")
    params = http_actions.RequestParams.model_validate(
        {
            "method": "put",
            "url": fake_api.url("/flags/maintenance?env=prod"),
            "headers": {"X-Api-Key": {"secret": {"file": str(key)}}, "X-Reason": "alert"},
            "body": "on",
            "expect_status": [204],
        }
    )
    plan = await action.plan(params, ctx)
    assert plan.details["request"]["headers"] == {
        "X-Api-Key": f"<secret file:{key}>",
        "X-Reason": "alert",
    }
    assert plan.summary == f"PUT {fake_api.url('/flags/maintenance?env=prod')} (expect [204])"
    fake_api.replies = [Reply(204, "")]
    outcome = await action.apply(params, ctx, plan)
    [got] = fake_api.received
    assert got.method == "PUT" and got.body == b"on"
    assert got.headers["X-Api-Key"] == "file-secret-abcdef"
    assert got.headers["Content-Type"].startswith("text/plain")
    assert outcome.details["status"] == 204
    assert "file-secret-abcdef" not in outcome.model_dump_json()

    fake_api.replies = [Reply(200)]  # a success, but not the one the policy expects
    with pytest.raises(PermanentActionError, match=r"HTTP 200, expected \[204\]"):
        await action.apply(params, ctx, plan)


async def test_secret_inside_a_json_body_and_a_shared_client(
    fake_api: FakeApi, action: http_actions.Request, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_SECRET", "body-secret-778899")
    params = http_actions.RequestParams.model_validate(
        {
            "url": fake_api.url("/hooks/run"),
            "body": {
                "runbook": "restart",
                "auth": {"token": {"secret": {"env": "HOOK_SECRET"}}},
                "list": [{"secret": {"env": "HOOK_SECRET"}, "prefix": "k="}],
            },
        }
    )
    async with httpx.AsyncClient(headers={"User-Agent": "shared-client"}) as client:
        ctx = registry.ActionContext(alert=None, target={}, services=registry.Services(http=client))
        plan = await action.plan(params, ctx)
        outcome = await action.apply(params, ctx, plan)
    assert plan.details["request"]["body"] == {
        "runbook": "restart",
        "auth": {"token": "<secret env:HOOK_SECRET>"},
        "list": ["k=<secret env:HOOK_SECRET>"],
    }
    [got] = fake_api.received
    assert got.headers["User-Agent"] == "shared-client"
    assert got.json() == {
        "runbook": "restart",
        "auth": {"token": "body-secret-778899"},
        "list": ["k=body-secret-778899"],
    }
    assert "body-secret-778899" not in json.dumps(
        [plan.model_dump(mode="json"), outcome.model_dump(mode="json")]
    )


async def test_basic_auth(
    fake_api: FakeApi,
    action: http_actions.Request,
    ctx: registry.ActionContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BASIC_PW", "hunter22")
    params = http_actions.RequestParams.model_validate(
        {
            "method": "GET",
            "url": fake_api.url("/status"),
            "auth": {"basic": {"username": "ops", "password": {"env": "BASIC_PW"}}},
        }
    )
    plan = await action.plan(params, ctx)
    assert plan.details["request"]["headers"]["Authorization"] == "Basic ops:<secret env:BASIC_PW>"
    await action.apply(params, ctx, plan)
    assert fake_api.received[0].headers["Authorization"] == "Basic b3BzOmh1bnRlcjIy"


async def test_connection_refused_is_temporary(
    action: http_actions.Request,
    runner: action_runner.ActionRunner,
    sleeps: Sleeps,
    ctx: registry.ActionContext,
) -> None:
    from tests.support import services

    params = http_actions.RequestParams(
        url=f"http://127.0.0.1:{services.free_port()}/x", retries=1, backoff=2
    )
    with pytest.raises(TemporaryActionError, match="ConnectError") as info:
        await runner.apply(action, params, ctx, await action.plan(params, ctx))
    assert sleeps == [2.0]
    assert info.value.delay == 2.0


async def test_missing_secret_is_permanent_and_names_it(
    fake_api: FakeApi,
    action: http_actions.Request,
    ctx: registry.ActionContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CF_API_TOKEN", raising=False)
    params = purge_params(fake_api)
    with pytest.raises(
        PermanentActionError, match="secret env:CF_API_TOKEN: environment variable 'CF_API_TOKEN'"
    ):
        await action.apply(params, ctx, await action.plan(params, ctx))
    assert fake_api.received == []


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"url": "ftp://x/y"}, "invalid URL 'ftp://x/y'"),
        ({"url": "http://x", "method": "BREW"}, "method"),
        ({"url": "http://x", "auth": {}}, "exactly one of 'bearer' or 'basic'"),
        (
            {"url": "http://x", "auth": {"bearer": {"env": "A", "file": "/b"}}},
            "exactly one of 'env' or 'file'",
        ),
        ({"url": "http://x", "body": {"k": {"secret": {"vault": "x"}}}}, "vault"),
        ({"url": "http://x", "expect_status": [700]}, "invalid HTTP status 700"),
        ({"url": "http://x", "retry": 3}, "retry"),
        (
            {"url": "http://x", "timeout": "soon"},
            "timeout\n  Value error, not a valid duration 'soon'",
        ),
        (
            {"url": "http://x", "timeout": "6m"},
            "timeout\n  Input should be less than or equal to 300",
        ),
    ],
)
def test_bad_params_are_clear_errors(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        http_actions.RequestParams.model_validate(raw)


def test_timeout_reads_the_one_grammar() -> None:
    """``timeout`` takes a duration as every other one does; a number is still seconds."""
    timeouts = [
        http_actions.RequestParams.model_validate({"url": "http://x", "timeout": value}).timeout
        for value in ("1.5s", "2m", 30)
    ]
    assert timeouts == [1.5, 120.0, 30.0]


async def test_a_token_with_a_trailing_newline_is_stripped_and_the_call_succeeds(
    fake_api: FakeApi,
    action: http_actions.Request,
    ctx: registry.ActionContext,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("CF_API_TOKEN", TOKEN + "\n")  # kubectl create secret --from-file
    params = purge_params(fake_api)
    outcome = await action.apply(params, ctx, await action.plan(params, ctx))
    [got] = fake_api.received
    assert got.headers["Authorization"] == f"Bearer {TOKEN}"
    assert outcome.details["status"] == 200
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.getMessage() == (
        "surrounding whitespace (trailing 1 character(s)) removed from the value "
        "of secret env:CF_API_TOKEN"
    )
    assert TOKEN not in caplog.text


SECRET_URL_PATH = "/hooks/T0123456/B0654321/url-secret-Qw9Er8Ty7"


@pytest.mark.parametrize(
    "echo",
    [
        pytest.param(lambda token, path: f"token {token} denied", id="raw"),
        pytest.param(lambda token, path: f"token {quote(token)} denied", id="quote"),
        pytest.param(lambda token, path: f"token={quote_plus(' ' + token)}", id="quote_plus"),
        pytest.param(lambda token, path: json.dumps({"error": f"bad {token!r}"}), id="repr"),
        pytest.param(lambda token, path: json.dumps({"token": token + "\n"}), id="json"),
        pytest.param(lambda token, path: f"no route {path}", id="url-path"),
        pytest.param(lambda token, path: f"unknown {path.rsplit('/', 1)[1]}", id="url-token"),
        pytest.param(lambda token, path: f"no route {quote(path, safe='')}", id="url-encoded"),
    ],
)
async def test_an_echoed_secret_in_any_form_is_recorded_nowhere(
    fake_api: FakeApi,
    action: http_actions.Request,
    runner: action_runner.ActionRunner,
    ctx: registry.ActionContext,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    echo: Callable[[str, str], str],
) -> None:
    caplog.set_level(logging.DEBUG)
    token = "tok/en+Zk29 xQ\"very'secret"  # characters every encoding changes
    monkeypatch.setenv("ECHO_TOKEN", token)
    monkeypatch.setenv("ECHO_URL", fake_api.url(SECRET_URL_PATH))
    params = http_actions.RequestParams.model_validate(
        {
            "url": {"secret": {"env": "ECHO_URL"}},
            "auth": {"bearer": {"env": "ECHO_TOKEN"}},
            "retries": 1,
        }
    )
    # A 5xx first (retried, logged, then the same body again as the final error).
    body = echo(token, SECRET_URL_PATH)
    fake_api.replies = [Reply(503, body), Reply(403, body)]
    with pytest.raises(PermanentActionError, match="HTTP 403") as info:
        await runner.apply(action, params, ctx, await action.plan(params, ctx))
    assert len(fake_api.received) == 2
    recorded = str(info.value) + caplog.text
    assert "<redacted>" in str(info.value)
    for part in (token, quote(token), quote(token, safe=""), quote_plus(token), "Qw9Er8Ty7"):
        assert part not in recorded
    assert json.dumps(token)[1:-1] not in recorded and repr(token)[1:-1] not in recorded


async def test_a_huge_error_body_is_stored_truncated(
    fake_api: FakeApi,
    action: http_actions.Request,
    ctx: registry.ActionContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CF_API_TOKEN", TOKEN)
    # The token straddles the cut at 512 characters: no prefix of it may survive.
    huge = "x" * 500 + TOKEN + "y" * 5_000_000
    fake_api.replies = [Reply(400, huge)]
    params = purge_params(fake_api)
    with pytest.raises(PermanentActionError) as info:
        await action.apply(params, ctx, await action.plan(params, ctx))
    message = str(info.value)
    assert message.endswith("x" * 500 + "<redacted>yy…(truncated)")
    assert len(message) < 700 and TOKEN[:6] not in message

    fake_api.replies = [Reply(200, "z" * 100_000)]  # a success: the outcome keeps 2000
    outcome = await action.apply(params, ctx, await action.plan(params, ctx))
    assert outcome.details["response"] == "z" * 2000 + "…(truncated)"


async def test_label_values_arrive_as_one_encoded_path_segment_and_query_value(
    fake_api: FakeApi, action: http_actions.Request, ctx: registry.ActionContext
) -> None:
    # What a policy renders from hostile labels: traversal, a query, a fragment, markup.
    params = http_actions.RequestParams.model_validate(
        {
            "method": "GET",
            "url": fake_api.url("/zones/{zone}/purge?mode=all"),
            "path_params": {"zone": "../../admin?drop=1#x"},
            "query": {"host": "a b&c=d/../<e>", "reason": "100%"},
        }
    )
    plan = await action.plan(params, ctx)
    expected = (
        "/zones/..%2F..%2Fadmin%3Fdrop%3D1%23x/purge"
        "?mode=all&host=a%20b%26c%3Dd%2F..%2F%3Ce%3E&reason=100%25"
    )
    assert plan.details["request"]["url"] == fake_api.url(expected)
    await action.apply(params, ctx, plan)
    [got] = fake_api.received
    assert got.path == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"url": "http://x/a/../admin"}, "'.' and '..' path segments are not allowed"),
        ({"url": "http://x/a/%2E%2e/admin"}, "'.' and '..' path segments are not allowed"),
        ({"url": "http://x/a/./b"}, "'.' and '..' path segments are not allowed"),
        ({"url": "http://x/a b"}, "whitespace, control characters and backslashes"),
        ({"url": "http://x/a\\..\\b"}, "whitespace, control characters and backslashes"),
        ({"url": "http://x/{zone}"}, r"no value for: zone; not in the url: none"),
        ({"url": "http://x/", "path_params": {"z": "a"}}, "not in the url: z"),
        ({"url": "http://x/{z}", "path_params": {"z": ".."}}, "'z': '..' is not a path segment"),
        ({"url": "http://x/{z}", "path_params": {"z": "a" * 1025}}, "longer than 1024"),
    ],
)
def test_unsafe_urls_are_refused_naming_the_field(raw: dict[str, object], message: str) -> None:
    reg = registry.Registry()
    http_actions.register(reg)
    with pytest.raises(ValidationError, match=message) as info:
        reg.parse_params("http.request", raw)
    [error] = info.value.errors()
    assert error["loc"] in {("url",), ("path_params",), ()}


async def test_a_line_break_in_a_header_value_is_refused_without_showing_it(
    fake_api: FakeApi,
    action: http_actions.Request,
    ctx: registry.ActionContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SPLIT_TOKEN", "first-half\r\nX-Injected: yes")
    params = http_actions.RequestParams.model_validate(
        {"url": fake_api.url("/x"), "auth": {"bearer": {"env": "SPLIT_TOKEN"}}}
    )
    with pytest.raises(PermanentActionError) as info:
        await action.apply(params, ctx, await action.plan(params, ctx))
    assert str(info.value) == "header 'Authorization': a line break or NUL in its value"
    assert fake_api.received == []


async def test_a_deeply_nested_json_response_is_kept_as_text(
    fake_api: FakeApi,
    action: http_actions.Request,
    ctx: registry.ActionContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CF_API_TOKEN", TOKEN)
    for depth in (40, 1000):  # json.loads gives up at 1000: RecursionError, not ValueError
        nested = "[" * depth + "]" * depth
        fake_api.replies = [Reply(200, nested, {"Content-Type": "application/json"})]
        params = purge_params(fake_api)
        outcome = await action.apply(params, ctx, await action.plan(params, ctx))
        assert outcome.details["status"] == 200
        assert outcome.details["response"] == nested
    fake_api.replies = [Reply(200, {"result": {"id": TOKEN}})]
    outcome = await action.apply(params, ctx, await action.plan(params, ctx))
    assert outcome.details["response"] == {"result": {"id": "<redacted>"}}


POLICY_WITH_LABELS = """
policies:
  - name: restart-service
    match: ['alertname="ServiceDown"']
    target: {kind: Deployment, namespace: production, name: conea-api}
    steps:
      - - action: http.request
          with:
            url: "https://api.example.com/v1/{{ labels.service }}/restart"
      - - action: http.request
          with:
            url: https://api.example.com/v1/services/{service}/restart
            path_params: {service: "{{ labels.service }}"}
            query: {reason: "{{ labels.reason }}"}
"""


def test_a_label_pasted_into_the_url_cannot_climb_the_path(tmp_path: Path) -> None:
    from monitor import policy as policy_mod
    from monitor.actions import default_registry
    from monitor.errors import PolicyError

    (tmp_path / "p.yaml").write_text(POLICY_WITH_LABELS)
    reg = default_registry()
    [loaded] = policy_mod.load([tmp_path], reg).policies
    alert = context.AlertContext(
        labels={"alertname": "ServiceDown", "service": "../admin", "reason": "x&y=1"},
        annotations={},
        status="firing",
        fingerprint="f00d",
        starts_at=datetime(2026, 11, 28, tzinfo=UTC),
    )
    with pytest.raises(PolicyError) as info:
        policy_mod.parse_params(loaded.steps[0][0], alert, reg)
    assert str(info.value).startswith(f"{tmp_path / 'p.yaml'}:7:11: policies[0].steps[0][0]: ")
    assert "url: Value error, invalid URL 'https://api.example.com/v1/../admin/restart': " in (
        str(info.value)
    )
    params = policy_mod.parse_params(loaded.steps[1][0], alert, reg)
    assert isinstance(params, http_actions.RequestParams)
    assert http_actions.shown_request(params)["url"] == (
        "https://api.example.com/v1/services/..%2Fadmin/restart?reason=x%26y%3D1"
    )
