"""notify against a real local HTTP server playing Slack and a generic webhook."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from datetime import UTC, datetime
from urllib.parse import quote

import pytest

from monitor import targets
from monitor.actions import http as http_actions
from monitor.actions import notify as notify_actions
from monitor.actions import registry
from monitor.actions import runner as action_runner
from monitor.alerts import context
from monitor.errors import PermanentActionError, TemporaryActionError
from tests.actions.conftest import FakeApi, Reply, Sleeps
from tests.conftest import FIXTURES

SLACK_PATH = "/services/T0001/B0002/hook-secret-path-XyZ123"


def alert_from_fixture() -> context.AlertContext:
    with open(os.path.join(FIXTURES, "alertmanager", "firing-single.json")) as fh:
        raw = json.load(fh)["alerts"][0]
    return context.AlertContext(
        labels=raw["labels"],
        annotations=raw["annotations"],
        status=raw["status"],
        fingerprint=raw["fingerprint"],
        starts_at=datetime.fromisoformat(raw["startsAt"].replace("Z", "+00:00")),
        generator_url=raw["generatorURL"],
    )


HISTORY = [
    {
        "step": 1,
        "action": "kubernetes.scale",
        "status": "succeeded",
        "summary": "scale production/conea-api 4 -> 6 (via its HPA minReplicas)",
        "result": "scaled production/conea-api to 6",
        "verification": "not_recovered",
        "verification_detail": "demo_queue_depth still 42 after 5m",
        "at": "2026-11-28T14:30:00Z",
        "execution_id": "ex-41",
    },
    {"step": 2, "action": "notify", "status": "planned", "summary": "page a human"},
]


def make_ctx(api: FakeApi, kind: str, **notifier: object) -> registry.ActionContext:
    notifiers = {
        "oncall": targets.Notifier.model_validate(
            {"kind": kind, "url": {"env": "NOTIFY_URL"}, **notifier}
        )
    }
    return registry.ActionContext(
        alert=alert_from_fixture(),
        target={"kind": "deployment", "name": "conea-api"},
        services=registry.Services(notifiers=notifiers, public_url="https://monitor.conea.io/"),
        policy="queue-too-deep",
        step=1,
        execution_id="ex-42",
    )


@pytest.fixture
def action() -> notify_actions.Notify:
    reg = registry.Registry()
    notify_actions.register(reg)
    found = reg.get("notify")
    assert isinstance(found, notify_actions.Notify)
    return found


async def test_slack_message_says_what_happened_and_hides_the_webhook_url(
    fake_api: FakeApi,
    action: notify_actions.Notify,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("NOTIFY_URL", fake_api.url(SLACK_PATH))
    ctx = make_ctx(fake_api, "slack")
    params = notify_actions.NotifyParams.model_validate(
        {
            "notifier": "oncall",
            "message": "Queue still deep after scaling: paging <on-call>",
            "history": HISTORY,
        }
    )
    plan = await action.plan(params, ctx)
    assert plan.summary == "notify 'oncall' (slack) about QueueTooDeep"
    assert plan.details["url"] == "<secret env:NOTIFY_URL>"
    outcome = await action.apply(params, ctx, plan)

    [got] = fake_api.received
    assert got.path == SLACK_PATH and got.method == "POST"
    payload = got.json()
    assert payload == plan.details["payload"]  # the plan shows exactly what is sent
    assert payload["text"] == (
        "[FIRING] QueueTooDeep - policy queue-too-deep: "
        "Queue still deep after scaling: paging &lt;on-call&gt;"
    )
    blocks = payload["blocks"]
    assert blocks[0] == {
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": "[FIRING] QueueTooDeep - policy queue-too-deep",
            "emoji": False,
        },
    }
    assert blocks[1]["text"]["text"] == "Queue still deep after scaling: paging &lt;on-call&gt;"
    fields = [f["text"] for f in blocks[2]["fields"]]
    assert "alertname: QueueTooDeep" in fields and "severity: page" in fields
    done = blocks[3]["text"]["text"]
    assert done.startswith(
        "*What was done*\n• step 1: kubernetes.scale succeeded - scale "
        "production/conea-api 4 -&gt; 6"
    )
    assert "verification: not_recovered (demo_queue_depth still 42 after 5m)" in done
    links = blocks[4]["elements"][0]["text"]
    assert "<http://vm:19090/graph?g0.expr=demo_queue_depth+%3E+10&g0.tab=1|Alert source>" in links
    assert "<https://monitor.conea.io/ui/executions/ex-42|Audit record>" in links
    assert outcome.details == {"notifier": "oncall", "status": 200}
    for recorded in (plan.model_dump_json(), outcome.model_dump_json(), caplog.text):
        assert "hook-secret-path-XyZ123" not in recorded
    assert "<redacted>" in caplog.text  # the HTTP client's request log, masked


async def test_generic_webhook_carries_alert_history_links_and_secret_header(
    fake_api: FakeApi, action: notify_actions.Notify, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_URL", fake_api.url("/incoming"))
    monkeypatch.setenv("NOTIFY_TOKEN", "hdr-token-556677")
    ctx = make_ctx(
        fake_api,
        "webhook",
        headers={
            "Authorization": {"secret": {"env": "NOTIFY_TOKEN"}, "prefix": "Token "},
            "X-Source": "conea",
        },
    )
    params = notify_actions.NotifyParams.model_validate({"notifier": "oncall", "history": HISTORY})
    plan = await action.plan(params, ctx)
    await action.apply(params, ctx, plan)
    [got] = fake_api.received
    assert got.headers["Authorization"] == "Token hdr-token-556677"
    assert got.headers["X-Source"] == "conea"
    body = got.json()
    assert body["version"] == "1" and body["kind"] == "conea-monitor.notification"
    assert body["title"] == "[FIRING] QueueTooDeep - policy queue-too-deep"
    assert body["summary"] == "Queue depth 42 on 127.0.0.1:19101"
    assert body["alert"]["labels"]["instance"] == "127.0.0.1:19101"
    assert body["alert"]["fingerprint"] == "b150e58c5c259039"
    assert [h["action"] for h in body["history"]] == ["kubernetes.scale", "notify"]
    assert body["history"][0]["verification"] == "not_recovered"
    assert body["links"] == {
        "alert": "http://vm:19090/graph?g0.expr=demo_queue_depth+%3E+10&g0.tab=1",
        "audit": "https://monitor.conea.io/ui/executions/ex-42",
    }
    assert body["target"] == {"kind": "deployment", "name": "conea-api"}
    assert "hdr-token-556677" not in plan.model_dump_json()


async def test_a_failing_hook_is_retried_then_a_404_is_not(
    fake_api: FakeApi,
    action: notify_actions.Notify,
    runner: action_runner.ActionRunner,
    sleeps: Sleeps,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NOTIFY_URL", fake_api.url(SLACK_PATH))
    ctx = make_ctx(fake_api, "slack")
    params = notify_actions.NotifyParams(notifier="oncall")
    fake_api.replies = [Reply(500, "oops"), Reply(200, "ok")]
    plan = await runner.plan(action, params, ctx)
    outcome = await runner.apply(action, params, ctx, plan)
    assert outcome.details["status"] == 200 and len(fake_api.received) == 2
    assert sleeps == [1.0]
    fake_api.replies = [Reply(404, "no_service")]
    with pytest.raises(PermanentActionError, match="HTTP 404: no_service") as info:
        await runner.apply(action, params, ctx, await action.plan(params, ctx))
    assert len(fake_api.received) == 3 and sleeps == [1.0]
    assert "hook-secret-path-XyZ123" not in str(info.value)


async def test_one_try_is_one_request_and_the_notifier_says_how_often_to_retry(
    fake_api: FakeApi,
    action: notify_actions.Notify,
    runner: action_runner.ActionRunner,
    sleeps: Sleeps,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NOTIFY_URL", fake_api.url(SLACK_PATH))
    params = notify_actions.NotifyParams(notifier="oncall")
    ctx = make_ctx(fake_api, "webhook", retries=1, timeout="3s")
    fake_api.replies = [Reply(503, "busy")] * 3
    plan = await action.plan(params, ctx)
    with pytest.raises(TemporaryActionError, match="HTTP 503: busy"):
        await action.apply(params, ctx, plan)
    assert len(fake_api.received) == 1  # the action alone: one request
    assert action.attempt_timeout(params, ctx) == 3 + http_actions.TIMEOUT_MARGIN
    with pytest.raises(TemporaryActionError, match="HTTP 503: busy"):
        await runner.apply(action, params, ctx, plan)
    assert len(fake_api.received) == 3  # the runner: the first try and retries: 1
    assert sleeps == [1.0]


async def test_the_history_comes_from_the_context_when_the_params_have_none(
    fake_api: FakeApi, action: notify_actions.Notify, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_URL", fake_api.url("/incoming"))
    ctx = make_ctx(fake_api, "webhook")
    ctx.history = tuple(registry.HistoryEntry.model_validate(entry) for entry in HISTORY)
    params = notify_actions.NotifyParams(notifier="oncall")
    assert action.reads_history
    plan = await action.plan(params, ctx)
    history = plan.details["payload"]["history"]
    assert [h["action"] for h in history] == ["kubernetes.scale", "notify"]
    assert history[0]["verification"] == "not_recovered"
    assert notify_actions.HistoryEntry is registry.HistoryEntry  # still importable here


async def test_unknown_notifier_is_permanent(
    fake_api: FakeApi, action: notify_actions.Notify
) -> None:
    ctx = make_ctx(fake_api, "slack")
    with pytest.raises(PermanentActionError, match=r"unknown notifier 'pager' \(known: oncall\)"):
        await action.plan(notify_actions.NotifyParams(notifier="pager"), ctx)


async def test_job_notification_without_alert(
    fake_api: FakeApi, action: notify_actions.Notify
) -> None:
    notifier = targets.Notifier(kind="webhook", url=fake_api.url("/jobs"))
    ctx = registry.ActionContext(
        alert=None,
        target={},
        services=registry.Services(notifiers={"ops": notifier}),
        policy="job:nightly-vacuum",
        now=lambda: datetime.now(UTC),
    )
    params = notify_actions.NotifyParams(notifier="ops", message="VACUUM ANALYZE done")
    plan = await action.plan(params, ctx)
    assert plan.details["url"] == fake_api.url("/jobs")
    await action.apply(params, ctx, plan)
    body = fake_api.received[0].json()
    assert body["title"] == "[JOB] scheduled job - policy job:nightly-vacuum"
    assert body["alert"] is None and body["links"] == {}


def test_notifier_config_errors() -> None:
    with pytest.raises(ValueError, match=r"invalid URL 'hooks\.slack\.com/x'"):
        targets.Notifier.model_validate({"kind": "slack", "url": "hooks.slack.com/x"})
    with pytest.raises(ValueError, match="kind"):
        targets.Notifier.model_validate({"kind": "sms", "url": "http://x"})
    with pytest.raises(ValueError, match="exactly one of 'env' or 'file'"):
        targets.Notifier.model_validate({"kind": "slack", "url": {}})


async def test_label_markup_cannot_link_mention_or_format_in_slack(
    fake_api: FakeApi, action: notify_actions.Notify, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_URL", fake_api.url(SLACK_PATH))
    ctx = make_ctx(fake_api, "slack")
    assert ctx.alert is not None
    hostile = "<!channel> <https://evil.example|click> *bold* @here"
    labels = {**ctx.alert.labels, "alertname": hostile, "instance": "<@U024BE7LH>"}
    alert = dataclasses.replace(
        ctx.alert, labels=labels, generator_url="https://evil.example/x|Fake link> <!here"
    )
    ctx = dataclasses.replace(ctx, alert=alert)
    params = notify_actions.NotifyParams.model_validate(
        {"notifier": "oncall", "message": f"Queue deep on {hostile}", "history": HISTORY}
    )
    await action.apply(params, ctx, await action.plan(params, ctx))
    payload = fake_api.received[0].json()
    escaped = "&lt;!channel&gt; &lt;https://evil.example|click&gt; *bold* @here"
    assert payload["text"] == (
        f"[FIRING] {escaped} - policy queue-too-deep: Queue deep on {escaped}"
    )
    header, lead, labels, done, links = payload["blocks"]
    assert header["text"]["type"] == "plain_text"  # Slack shows plain text as it is
    assert lead["text"] == {
        "type": "mrkdwn",
        "text": f"Queue deep on {escaped}",
        "verbatim": True,  # no auto-linking of bare URLs, no parsing of @here
    }
    fields = {f["text"]: f["type"] for f in labels["fields"]}
    assert fields[f"alertname: {hostile}"] == "plain_text"
    assert fields["instance: <@U024BE7LH>"] == "plain_text"
    assert done["text"]["verbatim"] is True
    [context] = links["elements"]
    assert context["verbatim"] is True
    assert context["text"].startswith(
        "<https://evil.example/x%7CFake%20link%3E%20%3C!here|Alert source> | "
    )


async def test_a_non_http_alert_link_is_left_out(
    fake_api: FakeApi, action: notify_actions.Notify, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_URL", fake_api.url(SLACK_PATH))
    ctx = make_ctx(fake_api, "slack")
    assert ctx.alert is not None
    ctx = dataclasses.replace(
        ctx, alert=dataclasses.replace(ctx.alert, generator_url="javascript:alert(1)")
    )
    params = notify_actions.NotifyParams(notifier="oncall")
    await action.apply(params, ctx, await action.plan(params, ctx))
    [context] = fake_api.received[0].json()["blocks"][-1]["elements"]
    assert context["text"] == "<https://monitor.conea.io/ui/executions/ex-42|Audit record>"


async def test_a_hook_echoing_its_secret_url_is_masked_and_cut(
    fake_api: FakeApi,
    action: notify_actions.Notify,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # A trailing newline, as a Kubernetes secret mounted --from-file gives it.
    monkeypatch.setenv("NOTIFY_URL", fake_api.url(SLACK_PATH) + "\n")
    ctx = make_ctx(fake_api, "slack")
    params = notify_actions.NotifyParams(notifier="oncall")
    echoed = (
        f"no such hook {SLACK_PATH} (encoded {quote(SLACK_PATH, safe='')}, "
        f"json {json.dumps({'path': SLACK_PATH})})" + " padding" * 200
    )
    fake_api.replies = [Reply(404, echoed)]
    with pytest.raises(PermanentActionError, match="HTTP 404: no such hook <redacted>") as info:
        await action.apply(params, ctx, await action.plan(params, ctx))
    assert fake_api.received[0].path == SLACK_PATH  # the newline was stripped
    assert str(info.value).endswith("…(truncated)") and len(str(info.value)) < 700
    for recorded in (str(info.value), caplog.text):
        assert "hook-secret-path-XyZ123" not in recorded and "T0001/B0002" not in recorded
    assert "removed from the value of secret env:NOTIFY_URL" in caplog.text


async def test_a_header_secret_with_a_line_break_inside_is_refused_unshown(
    fake_api: FakeApi, action: notify_actions.Notify, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_URL", fake_api.url("/incoming"))
    monkeypatch.setenv("NOTIFY_TOKEN", "two-line\ntoken-8877")
    ctx = make_ctx(fake_api, "webhook", headers={"X-Token": {"secret": {"env": "NOTIFY_TOKEN"}}})
    params = notify_actions.NotifyParams(notifier="oncall")
    with pytest.raises(PermanentActionError) as info:
        await action.apply(params, ctx, await action.plan(params, ctx))
    assert (
        str(info.value) == "notifier 'oncall': header 'X-Token': a line break or NUL in its value"
    )
    assert fake_api.received == []
