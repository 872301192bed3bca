"""notify's pagers against local servers that check the request as the real service does:
PagerDuty's Events API v2 and a Teams incoming webhook (JSON schemas of the documented
shapes), and a real SMTP server (aiosmtpd) requiring STARTTLS and AUTH."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor import targets
from monitor.actions import notify as notify_actions
from monitor.actions import registry, teams
from monitor.actions import runner as action_runner
from monitor.errors import PermanentActionError, TemporaryActionError
from tests.actions.conftest import Sleeps
from tests.actions.test_notify import alert_from_fixture
from tests.support import pagers

# The execution's page, wherever notify.execution_url puts it.
PAGE = str(
    notify_actions.execution_url(
        registry.ActionContext(
            alert=None,
            target={},
            services=registry.Services(public_url="https://monitor.conea.io/"),
            execution_id="42",
        )
    )
)

EVIDENCE = (
    registry.EvidenceLine(
        name="pods",
        outcome="ok",
        summary="3 pods, 1 not ready (CrashLoopBackOff, 7 restarts)",
        excerpt=("conea-api-7d9 Running 1/1 0", "conea-api-x2k CrashLoopBackOff 0/1 7"),
    ),
    registry.EvidenceLine(
        name="logs",
        outcome="timed_out",
        summary="no answer within 10s",
    ),
)


def ctx_for(notifier: dict[str, Any], **extra: Any) -> registry.ActionContext:
    return registry.ActionContext(
        alert=alert_from_fixture(),
        target={"kind": "deployment", "name": "conea-api", "namespace": "production"},
        services=registry.Services(
            notifiers={"pager": targets.Notifier.model_validate(notifier)},
            public_url="https://monitor.conea.io/",
        ),
        policy="queue-too-deep",
        step=1,
        execution_id="42",
        evidence=EVIDENCE,
        **extra,
    )


@pytest.fixture
def action() -> notify_actions.Notify:
    reg = registry.Registry()
    notify_actions.register(reg)
    found = reg.get("notify")
    assert isinstance(found, notify_actions.Notify)
    return found


@pytest.fixture
def routing_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("PD_ROUTING_KEY", pagers.ROUTING_KEY)
    return pagers.ROUTING_KEY


async def test_pagerduty_trigger_has_the_documented_shape_then_resolve_closes_it(
    action: notify_actions.Notify, routing_key: str
) -> None:
    with pagers.service("pagerduty") as pd:
        ctx = ctx_for(
            {"kind": "pagerduty", "url": pd.url, "routing_key": {"env": "PD_ROUTING_KEY"}}
        )
        params = notify_actions.NotifyParams(notifier="pager", message="Restart did not help")
        plan = await action.plan(params, ctx)
        assert plan.details["payload"]["routing_key"] == "<secret env:PD_ROUTING_KEY>"
        outcome = await action.apply(params, ctx, plan)
        resolve = notify_actions.NotifyParams(notifier="pager", resolve=True)
        resolved = await action.apply(resolve, ctx, await action.plan(resolve, ctx))

    assert pd.received == pd.accepted  # both passed the Events API v2 schema
    [trigger] = pd.events("trigger")
    assert trigger["routing_key"] == routing_key
    assert trigger["dedup_key"] == "conea-monitor/42"
    payload = trigger["payload"]
    assert payload["summary"] == (
        "[FIRING] QueueTooDeep - policy queue-too-deep: Restart did not help"
    )
    assert payload["severity"] == "critical"  # severity: page
    assert payload["source"] == "127.0.0.1:19101"
    assert (payload["component"], payload["group"], payload["class"]) == (
        "conea-api",
        "production",
        "QueueTooDeep",
    )
    assert payload["custom_details"]["evidence"][0] == {
        "name": "pods",
        "outcome": "ok",
        "summary": "3 pods, 1 not ready (CrashLoopBackOff, 7 restarts)",
        "excerpt": ["conea-api-7d9 Running 1/1 0", "conea-api-x2k CrashLoopBackOff 0/1 7"],
    }
    assert payload["custom_details"]["evidence"][1]["outcome"] == "timed_out"
    assert payload["custom_details"]["step"] == ctx.step + 1  # 1-based, as people read it
    assert trigger["links"][0] == {
        "href": PAGE,
        "text": "Execution 42 in conea-monitor",
    }
    assert trigger["client"] == "conea-monitor"
    assert trigger["client_url"] == PAGE
    assert outcome.details == {
        "notifier": "pager",
        "status": 202,
        "kind": "pagerduty",
        "event": "trigger",
        "dedup_key": "conea-monitor/42",
    }
    assert pd.events("resolve") == [
        {"routing_key": routing_key, "event_action": "resolve", "dedup_key": "conea-monitor/42"}
    ]
    assert resolved.details["event"] == "resolve"
    for recorded in (plan.model_dump_json(), outcome.model_dump_json()):
        assert routing_key not in recorded


async def test_pagerduty_summary_is_cut_to_1024_characters(
    action: notify_actions.Notify, routing_key: str
) -> None:
    with pagers.service("pagerduty") as pd:
        ctx = ctx_for(
            {"kind": "pagerduty", "url": pd.url, "routing_key": {"env": "PD_ROUTING_KEY"}}
        )
        params = notify_actions.NotifyParams(notifier="pager", message="x" * 5000)
        await action.apply(params, ctx, await action.plan(params, ctx))
    [trigger] = pd.accepted
    assert len(trigger["payload"]["summary"]) == 1024


async def test_an_invalid_event_is_refused_and_not_retried(
    action: notify_actions.Notify,
    runner: action_runner.ActionRunner,
    sleeps: Sleeps,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PD_ROUTING_KEY", "too-short")  # PagerDuty's keys are 32 characters
    with pagers.service("pagerduty") as pd:
        ctx = ctx_for(
            {"kind": "pagerduty", "url": pd.url, "routing_key": {"env": "PD_ROUTING_KEY"}}
        )
        params = notify_actions.NotifyParams(notifier="pager")
        with pytest.raises(PermanentActionError, match=r"HTTP 400: .*Event object is invalid"):
            await runner.apply(action, params, ctx, await action.plan(params, ctx))
    assert len(pd.received) == 1 and sleeps == [] and pd.accepted == []


async def test_pagerduty_500_is_retried_and_a_timeout_is_temporary(
    action: notify_actions.Notify,
    runner: action_runner.ActionRunner,
    sleeps: Sleeps,
    routing_key: str,
) -> None:
    with pagers.service("pagerduty") as pd:
        ctx = ctx_for(
            {"kind": "pagerduty", "url": pd.url, "routing_key": {"env": "PD_ROUTING_KEY"}}
        )
        params = notify_actions.NotifyParams(notifier="pager")
        pd.replies = [500]
        outcome = await runner.apply(action, params, ctx, await action.plan(params, ctx))
    assert outcome.details["status"] == 202 and len(pd.received) == 2 and sleeps == [1.0]
    with pagers.service("pagerduty", hold=True) as slow:
        ctx = ctx_for(
            {
                "kind": "pagerduty",
                "url": slow.url,
                "routing_key": {"env": "PD_ROUTING_KEY"},
                "timeout": "0.2s",
            }
        )
        with pytest.raises(TemporaryActionError, match="ReadTimeout"):
            await action.apply(params, ctx, await action.plan(params, ctx))


async def test_resolve_is_for_pagerduty_only(action: notify_actions.Notify) -> None:
    ctx = ctx_for({"kind": "teams", "url": "https://example.webhook.office.com/x"})
    with pytest.raises(PermanentActionError, match="resolve applies to pagerduty notifiers only"):
        await action.plan(notify_actions.NotifyParams(notifier="pager", resolve=True), ctx)


async def test_teams_card_has_the_documented_shape_facts_evidence_and_link(
    action: notify_actions.Notify,
) -> None:
    with pagers.service("teams") as hook:
        ctx = ctx_for({"kind": "teams", "url": hook.url})
        assert ctx.alert is not None
        ctx.alert = dataclasses.replace(
            ctx.alert,
            labels={**ctx.alert.labels, "team": "[click me](https://evil.example) **now**"},
        )
        params = notify_actions.NotifyParams(notifier="pager", message="Restart did not help")
        plan = await action.plan(params, ctx)
        outcome = await action.apply(params, ctx, plan)
    assert outcome.details == {"notifier": "pager", "status": 202}
    [message] = hook.accepted
    assert message == plan.details["payload"] and hook.received == hook.accepted
    [attachment] = message["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    texts = [b["text"] for b in card["body"] if b["type"] == "TextBlock"]
    assert texts[0] == r"\[FIRING\] QueueTooDeep - policy queue-too-deep"
    assert "Evidence" in texts
    assert any(t.startswith("pods (ok): 3 pods, 1 not ready (CrashLoopBackOff") for t in texts)
    [facts] = [b["facts"] for b in card["body"] if b["type"] == "FactSet"]
    assert {"title": "team", "value": r"\[click me\](https://evil.example) \*\*now\*\*"} in facts
    assert card["actions"][0] == {
        "type": "Action.OpenUrl",
        "title": "Open the execution",
        "url": PAGE,
    }


def test_teams_escapes_what_would_format_a_line() -> None:
    assert teams.escape("- item\n1. one\n# title\n12 pods `x` <b>") == (
        "\\- item\n1\\. one\n\\# title\n12 pods \\`x\\` \\<b\\>"
    )


def email_notifier(box: pagers.Mailbox, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "email",
        "host": box.host,
        "port": box.port,
        "from": "conea-monitor@conea.io",
        "to": ["oncall@conea.io", "sre@conea.io"],
        "ca_file": str(box.ca_file),
        "timeout": "5s",
        **extra,
    }


async def test_email_over_starttls_with_auth_carries_evidence_and_link(
    action: notify_actions.Notify, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "smtp-pass-778899")
    with pagers.mailbox(tmp_path, user=("conea", "smtp-pass-778899")) as box:
        ctx = ctx_for(email_notifier(box, username="conea", password={"env": "SMTP_PASSWORD"}))
        assert ctx.alert is not None
        ctx.alert = dataclasses.replace(
            ctx.alert, labels={**ctx.alert.labels, "team": "<script>alert(1)</script>"}
        )
        params = notify_actions.NotifyParams(notifier="pager", message="Restart did not help")
        plan = await action.plan(params, ctx)
        outcome = await action.apply(params, ctx, plan)
    assert box.logins == ["conea"] and box.tls_sessions == 1
    [(sender, recipients)] = box.envelopes
    assert sender == "conea-monitor@conea.io"
    assert recipients == ["oncall@conea.io", "sre@conea.io"]
    [mail] = box.messages
    assert mail["Subject"] == "[FIRING] QueueTooDeep - policy queue-too-deep"
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text is not None and html is not None
    plain = text.get_content().replace("\r\n", "\n")
    assert plain == plan.details["email"]["text"]
    assert "Restart did not help" in plain
    assert "- pods (ok): 3 pods, 1 not ready (CrashLoopBackOff, 7 restarts)" in plain
    assert "    conea-api-x2k CrashLoopBackOff 0/1 7" in plain
    assert f"Execution: {PAGE}" in plain
    markup = html.get_content()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markup and "<script>" not in markup
    assert f'<a href="{PAGE}">' in markup
    assert (
        outcome.details["kind"] == "email"
        and outcome.details["reply"] == "Message accepted for delivery"
    )
    for recorded in (plan.model_dump_json(), outcome.model_dump_json()):
        assert "smtp-pass-778899" not in recorded


async def test_email_without_credentials_does_not_authenticate(
    action: notify_actions.Notify, tmp_path: Path
) -> None:
    with pagers.mailbox(tmp_path) as box:
        ctx = ctx_for(email_notifier(box))
        params = notify_actions.NotifyParams(notifier="pager")
        await action.apply(params, ctx, await action.plan(params, ctx))
    assert len(box.messages) == 1 and box.logins == [] and box.tls_sessions == 1


async def test_email_over_implicit_tls(action: notify_actions.Notify, tmp_path: Path) -> None:
    with pagers.mailbox(tmp_path, implicit_tls=True) as box:
        ctx = ctx_for(email_notifier(box, implicit_tls=True))
        params = notify_actions.NotifyParams(notifier="pager")
        await action.apply(params, ctx, await action.plan(params, ctx))
    assert len(box.messages) == 1 and box.tls_sessions == 1


async def test_smtp_refusals_say_whether_to_retry(
    action: notify_actions.Notify,
    runner: action_runner.ActionRunner,
    sleeps: Sleeps,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "wrong-password-1")
    params = notify_actions.NotifyParams(notifier="pager")
    with pagers.mailbox(tmp_path, user=("conea", "smtp-pass-778899")) as box:
        ctx = ctx_for(email_notifier(box, username="conea", password={"env": "SMTP_PASSWORD"}))
        with pytest.raises(PermanentActionError, match="SMTP 535") as info:
            await runner.apply(action, params, ctx, await action.plan(params, ctx))
        assert "wrong-password-1" not in str(info.value) and sleeps == []
    with pagers.mailbox(tmp_path) as box:
        ctx = ctx_for(email_notifier(box, retries=1))
        box.refuse = "550 5.1.1 no such user"
        with pytest.raises(PermanentActionError, match=r"every recipient refused: .*550"):
            await runner.apply(action, params, ctx, await action.plan(params, ctx))
        assert sleeps == []
        box.refuse = "451 4.3.0 try again later"
        with pytest.raises(TemporaryActionError, match=r"every recipient refused: .*451"):
            await runner.apply(action, params, ctx, await action.plan(params, ctx))
        assert sleeps == [1.0] and box.messages == []  # the notifier's one retry


async def test_an_smtp_server_that_is_not_there_is_temporary(
    action: notify_actions.Notify, tmp_path: Path
) -> None:
    with pagers.mailbox(tmp_path) as box:
        notifier = email_notifier(box)
    ctx = ctx_for(notifier)  # the server has stopped: nothing listens on its port
    params = notify_actions.NotifyParams(notifier="pager")
    with pytest.raises(TemporaryActionError, match=f"smtp://127.0.0.1:{box.port}"):
        await action.apply(params, ctx, await action.plan(params, ctx))


async def test_slack_and_webhook_show_the_evidence_bounded(
    action: notify_actions.Notify,
) -> None:
    many = tuple(
        registry.EvidenceLine(
            name=f"diag-{i}",
            outcome="ok",
            summary="s" * 500,
            excerpt=tuple(f"line {j}" for j in range(20)),
        )
        for i in range(10)
    )
    ctx = ctx_for({"kind": "slack", "url": "https://hooks.slack.com/services/x"})
    ctx.evidence = many
    plan = await action.plan(notify_actions.NotifyParams(notifier="pager"), ctx)
    [section] = [
        b
        for b in plan.details["payload"]["blocks"]
        if b.get("text", {}).get("text", "").startswith("*Evidence*")
    ]
    text = section["text"]["text"]
    assert text.count("• *diag-") == 6 and "diag-6" not in text
    assert "line 4" in text and "line 5" not in text
    ctx.services.notifiers = {
        "pager": targets.Notifier(kind="webhook", url="https://hooks.example/x")
    }
    body = (await action.plan(notify_actions.NotifyParams(notifier="pager"), ctx)).details
    evidence = body["payload"]["evidence"]
    assert len(evidence) == 6 and len(evidence[0]["excerpt"]) == 5
    assert len(evidence[0]["summary"]) == 200


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"kind": "pagerduty"},
            "kind pagerduty: routing_key is required",
        ),
        (
            {"kind": "email", "host": "smtp.x", "from": "a@conea.io"},
            "kind email: to is required",
        ),
        (
            {"kind": "email", "host": "h", "from": "a@b", "to": ["c@d"], "username": ""},
            "username\n  Value error, is empty: leave it out for no AUTH",
        ),
        (
            {"kind": "email", "host": "h", "from": "a@b", "to": ["c@d"], "username": "u"},
            "set both username and password, or neither",
        ),
        (
            {
                "kind": "email",
                "host": "h",
                "from": "a@b",
                "to": ["c@d"],
                "starttls": False,
                "username": "u",
                "password": {"env": "P"},
            },
            "credentials over an unencrypted connection",
        ),
        (
            {"kind": "email", "host": "h", "from": "a@b", "to": ["c@d\r\nBcc: x@y"]},
            "invalid email address 'c@d\\r\\nBcc: x@y'",
        ),
        (
            {"kind": "email", "host": "h", "from": "a@b", "to": [f"u{i}@d" for i in range(51)]},
            "List should have at most 50 items",
        ),
        (
            {"kind": "slack", "url": "https://x.example/y", "host": "smtp.x"},
            "kind slack: host does not apply (remove it)",
        ),
        (
            {"kind": "email", "host": "h", "from": "a@b", "to": ["c@d"], "url": "https://x/y"},
            "kind email: url does not apply (remove it)",
        ),
    ],
)
def test_notifier_config_errors_name_the_field(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as info:
        targets.Notifier.model_validate(raw)
    assert message in str(info.value)


def test_the_documented_notifiers_are_valid() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "actions.md").read_text()
    section = text.split("## Configuration: PostgreSQL targets and notifiers", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    raw = yaml.safe_load(block)["notifiers"]
    kinds = {name: targets.Notifier.model_validate(item).kind for name, item in raw.items()}
    assert sorted(kinds.values()) == ["email", "pagerduty", "slack", "teams", "webhook"]


async def test_a_dedup_key_names_the_incident_a_trigger_opens_and_a_resolve_closes(
    action: notify_actions.Notify, routing_key: str
) -> None:
    with pagers.service("pagerduty") as pd:
        pager = {"kind": "pagerduty", "url": pd.url, "routing_key": {"env": "PD_ROUTING_KEY"}}
        ctx = dataclasses.replace(ctx_for(pager), alert=None, execution_id=None)
        key = "conea-monitor/breaker/2026-11-29T10:00:00+00:00"
        for params in (
            notify_actions.NotifyParams(notifier="pager", message="breaker open", dedup_key=key),
            notify_actions.NotifyParams(notifier="pager", resolve=True, dedup_key=key),
        ):
            outcome = await action.apply(params, ctx, await action.plan(params, ctx))
            assert outcome.details["dedup_key"] == key
        assert outcome.summary == f"resolved the page on 'pager' (pagerduty {key})"
    assert [(e["event_action"], e["dedup_key"]) for e in pd.received] == [
        ("trigger", key),
        ("resolve", key),
    ]
    assert pd.received == pd.accepted
    with pytest.raises(ValueError, match="dedup_key"):
        notify_actions.NotifyParams(notifier="pager", dedup_key="k" * 256)
