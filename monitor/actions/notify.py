"""``notify``: tell people what happened: Slack, a generic JSON webhook, PagerDuty
(Events API v2), Microsoft Teams (an Adaptive Card) or email (SMTP).

The message names the alert (name, status, labels, summary), what was planned and done
at each step (``history``, filled in by the engine), the verification result, the short
evidence the policy's diagnostics gathered (``ActionContext.evidence``, newest first,
bounded), and links to the alert's ``generatorURL`` and to the execution's page in the
console (:func:`execution_url`: ``public_url``/ui/executions/<execution id>). ``message``
(already rendered by the engine from the policy's template) leads the text when given.
The history is the ``history`` parameter when given, else ``ActionContext.history``
(``reads_history``).

The notifier (``ctx.services.notifiers[name]``, a :class:`monitor.targets.Notifier`)
holds the URL, routing key or SMTP credentials, usually secret references: they are
resolved at apply time and never shown. The plan carries the exact payload that would
be sent (for email: its headers and text). One try is one request (one SMTP session);
the notifier's ``retries`` and ``timeout`` become the runner's retry policy and try
timeout. A PagerDuty trigger's dedup key is ``conea-monitor/<execution id>`` unless
``dedup_key`` names another; ``resolve: true`` sends the resolve for it (the engine
does, when the ladder ends: :mod:`monitor.engine.paging`).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field

from monitor import secrets, targets
from monitor.actions import http, pagerduty, registry, runner, smtp, teams
from monitor.actions.registry import EvidenceLine, HistoryEntry, StepStatus, Verification
from monitor.errors import ConfigError, PermanentActionError

__all__ = [
    "EvidenceLine",
    "HistoryEntry",
    "Notify",
    "NotifyParams",
    "StepStatus",
    "Verification",
    "register",
]

SLACK_TEXT_LIMIT = 2900  # Slack rejects section texts over 3000 characters
MAX_LABEL_FIELDS = 10
MAX_EVIDENCE = 6  # diagnostics a message shows
MAX_EXCERPT = 5  # lines of each
LINE_LIMIT = 200  # characters of an evidence line


class NotifyParams(registry.StrictModel):
    notifier: str = Field(min_length=1)
    message: str | None = None
    title: str | None = None
    history: list[HistoryEntry] = []
    resolve: bool = False  # pagerduty: resolve this execution's incident instead
    # pagerduty: the incident's key, instead of conea-monitor/<execution id> (the engine's
    # approval requests and breaker messages: monitor.engine.paging)
    dedup_key: str | None = Field(default=None, min_length=1, max_length=pagerduty.DEDUP_LIMIT)


def execution_url(ctx: registry.ActionContext, execution_id: str | None = None) -> str | None:
    ident = execution_id or ctx.execution_id
    if not ident or not ctx.services.public_url:
        return None
    return f"{ctx.services.public_url.rstrip('/')}/ui/executions/{ident}"


def _line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= LINE_LIMIT else text[: LINE_LIMIT - 1] + "…"


def evidence_of(ctx: registry.ActionContext) -> list[dict[str, Any]]:
    """The context's evidence, bounded: a few diagnostics, a few short lines each."""
    return [
        {
            "name": _line(item.name),
            "outcome": item.outcome,
            "summary": _line(item.summary),
            "excerpt": [_line(line) for line in item.excerpt[:MAX_EXCERPT]],
        }
        for item in ctx.evidence[:MAX_EVIDENCE]
    ]


def _alertname(ctx: registry.ActionContext) -> str:
    return ctx.alert.labels.get("alertname", "alert") if ctx.alert else "scheduled job"


def _title(params: NotifyParams, ctx: registry.ActionContext) -> str:
    if params.title:
        return params.title
    status = ctx.alert.status.upper() if ctx.alert else "JOB"
    policy = f" - policy {ctx.policy}" if ctx.policy else ""
    return f"[{status}] {_alertname(ctx)}{policy}"


def _step_line(entry: HistoryEntry) -> str:
    line = f"step {entry.step}: {entry.action} {entry.status}"
    if entry.summary:
        line += f" - {entry.summary}"
    if entry.result and entry.result != entry.summary:
        line += f" -> {entry.result}"
    if entry.verification:
        line += f"; verification: {entry.verification}"
        if entry.verification_detail:
            line += f" ({entry.verification_detail})"
    return line


def compose(params: NotifyParams, ctx: registry.ActionContext) -> dict[str, Any]:
    """The message as data; both payload shapes are built from it."""
    alert = ctx.alert
    links: dict[str, str] = {}
    if alert is not None and alert.generator_url:
        links["alert"] = alert.generator_url
    audit = execution_url(ctx)
    history = params.history or list(ctx.history)
    if audit:
        links["audit"] = audit
    return {
        "title": _title(params, ctx),
        "message": params.message,
        "summary": (alert.annotations.get("summary") or alert.annotations.get("description"))
        if alert
        else None,
        "alert": None
        if alert is None
        else {
            "status": alert.status,
            "labels": dict(alert.labels),
            "annotations": dict(alert.annotations),
            "fingerprint": alert.fingerprint,
            "starts_at": alert.starts_at.isoformat(),
            "generator_url": alert.generator_url,
        },
        "policy": ctx.policy,
        "step": ctx.step + 1,  # as people read it, like the history's
        "execution_id": ctx.execution_id,
        "target": dict(ctx.target),
        "history": [entry.model_dump(mode="json") for entry in history],
        "steps": [_step_line(entry) for entry in history],
        "evidence": evidence_of(ctx),
        "links": links,
    }


def _escape(text: str) -> str:
    """Slack mrkdwn: &, < and > are control characters (links, mentions: ``<!here>``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _mrkdwn(text: str) -> dict[str, Any]:
    """A mrkdwn text object whose text Slack takes verbatim: no bare URL, channel name or
    mention in it is turned into a link or a ping (the text must be escaped already)."""
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _link(url: str, text: str) -> str | None:
    """``<url|text>`` for an http(s) URL; characters that would end the link are encoded."""
    if not url.lower().startswith(("http://", "https://")):
        return None  # javascript:, data: ... are no links to follow
    safe = "".join(
        f"%{ord(c):02X}" if c in "<>|" or c.isspace() or not c.isprintable() else c for c in url
    )
    return f"<{safe}|{text}>"


def _cut(text: str, limit: int = SLACK_TEXT_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_payload(message: dict[str, Any]) -> dict[str, Any]:
    """Incoming-webhook JSON: ``text`` (the notification fallback) and ``blocks``."""
    lead = message["message"] or message["summary"] or ""
    # The fallback text is mrkdwn too (notifications show it): escaped like the blocks.
    fallback = _escape(message["title"] + (f": {lead}" if lead else ""))
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _cut(message["title"], 150), "emoji": False},
        }
    ]
    if lead:
        blocks.append({"type": "section", "text": _mrkdwn(_cut(_escape(lead)))})
    if message["alert"]:
        labels = sorted(message["alert"]["labels"].items())[:MAX_LABEL_FIELDS]
        if labels:
            # plain_text: a label's *, _, ~ or ` cannot format, link or mention anything.
            blocks.append(
                {
                    "type": "section",
                    "fields": [
                        {"type": "plain_text", "text": _cut(f"{k}: {v}", 2000), "emoji": False}
                        for k, v in labels
                    ],
                }
            )
    if message["steps"]:
        lines = "\n".join(f"• {_escape(line)}" for line in message["steps"])
        blocks.append({"type": "section", "text": _mrkdwn(_cut(f"*What was done*\n{lines}"))})
    if message["evidence"]:
        found: list[str] = []
        for item in message["evidence"]:
            found.append(
                f"• *{_escape(item['name'])}* ({item['outcome']}): {_escape(item['summary'])}"
            )
            found += [f"    {_escape(line)}" for line in item["excerpt"]]
        evidence = "*Evidence*\n" + "\n".join(found)
        blocks.append({"type": "section", "text": _mrkdwn(_cut(evidence))})
    link_text = {"alert": "Alert source", "audit": "Audit record"}
    links = [
        link
        for name, url in message["links"].items()
        if (link := _link(url, link_text[name])) is not None
    ]
    if links:
        blocks.append({"type": "context", "elements": [_mrkdwn(" | ".join(links))]})
    return {"text": _cut(fallback), "blocks": blocks}


def webhook_payload(message: dict[str, Any]) -> dict[str, Any]:
    """Generic JSON webhook: the composed message, versioned."""
    payload = {"version": "1", "kind": "conea-monitor.notification"}
    payload.update({k: v for k, v in message.items() if k != "steps"})
    return payload


def payload_for(
    notifier: targets.Notifier,
    message: dict[str, Any],
    *,
    routing_key: str | None = None,
    resolve: bool = False,
    public_url: str = "",
    dedup_key: str | None = None,
) -> dict[str, Any]:
    """The JSON an HTTP kind posts. PagerDuty's routing key is the placeholder a plan
    shows unless ``routing_key`` (its value, at apply time) is given; its dedup key is
    ``dedup_key`` when given, else the execution's."""
    if notifier.kind == "pagerduty":
        key = routing_key if routing_key is not None else secrets.show(notifier.routing_key)
        dedup = dedup_key or (
            pagerduty.dedup_key(str(message["execution_id"])) if message["execution_id"] else None
        )
        if resolve:
            assert dedup is not None  # _check_resolve
            return pagerduty.resolve(key, dedup)
        return pagerduty.trigger(message, key, public_url, dedup)
    if notifier.kind == "teams":
        return teams.payload(message)
    return slack_payload(message) if notifier.kind == "slack" else webhook_payload(message)


def notifier_of(ctx: registry.ActionContext, name: str) -> targets.Notifier:
    notifier = ctx.services.notifiers.get(name)
    if notifier is None:
        known = ", ".join(sorted(ctx.services.notifiers)) or "none configured"
        raise PermanentActionError(f"unknown notifier {name!r} (known: {known})")
    return notifier


class Notify(registry.Action[NotifyParams]):
    name = "notify"
    Params = NotifyParams
    reads_history = True
    reads_evidence = True
    timeout = 120.0 + http.TIMEOUT_MARGIN  # the longest notifier timeout, and a margin

    def attempt_timeout(self, params: NotifyParams, ctx: registry.ActionContext) -> float:
        notifier = ctx.services.notifiers.get(params.notifier)
        return self.timeout if notifier is None else notifier.timeout + http.TIMEOUT_MARGIN

    def retry_policy(
        self, params: NotifyParams, ctx: registry.ActionContext
    ) -> runner.RetryPolicy | None:
        notifier = ctx.services.notifiers.get(params.notifier)
        if notifier is None:
            return None  # the try fails at once, naming the unknown notifier
        return http.retry_policy(
            notifier.retries,
            first=1.0,
            cap=10.0,
            max_hint=30.0,
            request_timeout=notifier.timeout,
        )

    async def plan(self, params: NotifyParams, ctx: registry.ActionContext) -> registry.Plan:
        notifier = notifier_of(ctx, params.notifier)
        _check_resolve(params, notifier, ctx)
        message = compose(params, ctx)
        details: dict[str, Any] = {
            "notifier": params.notifier,
            "kind": notifier.kind,
            "url": notifier.describe_url(),
        }
        if notifier.kind == "email":
            details["email"] = smtp.shown(smtp.build(message, notifier))
        else:
            details["payload"] = payload_for(
                notifier,
                message,
                resolve=params.resolve,
                public_url=ctx.services.public_url,
                dedup_key=params.dedup_key,
            )
        verb = "resolve the page of" if params.resolve else "notify"
        return registry.Plan(
            action=self.name,
            summary=f"{verb} {params.notifier!r} ({notifier.kind}) about {_alertname(ctx)}",
            details=details,
        )

    async def apply(
        self, params: NotifyParams, ctx: registry.ActionContext, plan: registry.Plan
    ) -> registry.Outcome:
        notifier = notifier_of(ctx, params.notifier)
        _check_resolve(params, notifier, ctx)
        message = compose(params, ctx)
        redactor = secrets.Redactor()
        if notifier.kind == "email":
            try:
                details = await smtp.send(notifier, smtp.build(message, notifier), redactor)
            except ConfigError as exc:
                raise PermanentActionError(f"notifier {params.notifier!r}: {exc}") from None
            return registry.Outcome(
                summary=f"emailed {params.notifier!r} ({len(notifier.to)} recipient(s)) "
                f"about {_alertname(ctx)}",
                details={"notifier": params.notifier, "kind": "email", **details},
            )
        try:
            url = secrets.materialize(notifier.endpoint, redactor)
            headers = {
                k: str(v) for k, v in secrets.materialize(notifier.headers, redactor).items()
            }
            key = (
                secrets.materialize(notifier.routing_key, redactor)
                if notifier.routing_key is not None
                else None
            )
        except ConfigError as exc:
            raise PermanentActionError(f"notifier {params.notifier!r}: {exc}") from None
        try:
            http.check_headers(headers)
        except PermanentActionError as exc:
            raise PermanentActionError(f"notifier {params.notifier!r}: {exc}") from None
        headers.setdefault("Content-Type", "application/json")
        payload = payload_for(
            notifier,
            message,
            routing_key=key,
            resolve=params.resolve,
            public_url=ctx.services.public_url,
            dedup_key=params.dedup_key,
        )
        request = http.Prepared(
            "POST",
            url,
            headers,
            json.dumps(payload).encode(),
            shown={"method": "POST", "url": notifier.describe_url()},
        )
        async with http.client_for(ctx.services.http) as client:
            sent = await http.send(
                client,
                request,
                request_timeout=notifier.timeout,
                expected=lambda s: 200 <= s < 300,
                redactor=redactor,
                log=ctx.log,
            )
        status = sent.response.status_code
        if not 200 <= status < 300:
            excerpt = sent.excerpt(redactor)
            raise PermanentActionError(
                f"notifier {params.notifier!r} ({notifier.describe_url()}): HTTP {status}: "
                f"{excerpt}"
            )
        done: dict[str, Any] = {"notifier": params.notifier, "status": status}
        if notifier.kind != "pagerduty":
            return registry.Outcome(
                summary=f"notified {params.notifier!r} ({notifier.kind}) about {_alertname(ctx)}",
                details=done,
            )
        event = payload["event_action"]
        done.update(kind="pagerduty", event=event, dedup_key=payload.get("dedup_key"))
        answer = http.response_excerpt(sent, redactor)
        if isinstance(answer, dict) and isinstance(answer.get("dedup_key"), str):
            done["dedup_key"] = answer["dedup_key"]
        verb = "resolved the page on" if params.resolve else "paged"
        # the engine's own pages (approval, breaker) are about no alert or job
        about = "" if params.dedup_key and ctx.alert is None else f" about {_alertname(ctx)}"
        return registry.Outcome(
            summary=f"{verb} {params.notifier!r} (pagerduty {done['dedup_key']}){about}",
            details=done,
        )


def _check_resolve(
    params: NotifyParams, notifier: targets.Notifier, ctx: registry.ActionContext
) -> None:
    if not params.resolve:
        return
    if notifier.kind != "pagerduty":
        raise PermanentActionError(
            f"notifier {params.notifier!r}: resolve applies to pagerduty notifiers only "
            f"(this one is {notifier.kind})"
        )
    if not ctx.execution_id and not params.dedup_key:
        raise PermanentActionError("resolve: no execution or dedup_key whose page to resolve")


def paged(entry_action: str, outcome: dict[str, Any] | None) -> str | None:
    """The notifier an action's outcome paged on PagerDuty (a trigger), or None."""
    details = (outcome or {}).get("details") or {}
    if entry_action != "notify" or not isinstance(details, dict):
        return None
    if details.get("kind") != "pagerduty" or details.get("event") != "trigger":
        return None
    name = details.get("notifier")
    return name if isinstance(name, str) else None


def register(reg: registry.Registry) -> None:
    secrets.protect_logger("httpx")  # it logs request URLs; a webhook URL may be a secret
    secrets.protect_logger("monitor.actions")
    reg.register(Notify)
