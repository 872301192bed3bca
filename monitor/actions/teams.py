"""A Microsoft Teams message: an Adaptive Card, as Teams' incoming webhooks (and the
Workflows that replace them) take it.

``{"type": "message", "attachments": [{"contentType":
"application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": <card>}]}``,
the card of version 1.4 (what Teams renders) holding TextBlocks, a FactSet of the
alert's labels and Action.OpenUrl buttons to the execution's page and the alert's
source. TextBlocks render a markdown subset: untrusted text (labels, log lines) has its
markdown characters escaped so it cannot format or link.
"""

from __future__ import annotations

import re
from typing import Any

CARD_VERSION = "1.4"
CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
TEXT_LIMIT = 2000
MAX_FACTS = 10
_MARKDOWN = re.compile(r"([\\`*_~\[\]<>])")  # emphasis, code, links, HTML
_LINE_START = re.compile(r"(?m)^(\s*)([-+#]|\d+(?=\.))(?=[\s.])")  # a list item, a heading


def escape(text: str) -> str:
    """``text`` with the markdown characters that would format it backslash-escaped
    (``1.`` at the start of a line becomes ``1\\.``, ``- `` becomes ``\\- ``)."""
    text = _MARKDOWN.sub(r"\\\1", text)
    return _LINE_START.sub(
        lambda m: m[1] + (m[2] + "\\" if m[2][0].isdigit() else "\\" + m[2]), text
    )


def _cut(text: str, limit: int = TEXT_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": _cut(text), "wrap": True, **style}


def payload(message: dict[str, Any]) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        _text(escape(message["title"]), size="Medium", weight="Bolder", style="heading")
    ]
    lead = message["message"] or message["summary"]
    if lead:
        body.append(_text(escape(lead)))
    if message["alert"]:
        labels = sorted(message["alert"]["labels"].items())[:MAX_FACTS]
        if labels:
            body.append(
                {
                    "type": "FactSet",
                    "facts": [{"title": _cut(k, 200), "value": _cut(escape(v))} for k, v in labels],
                }
            )
    if message["steps"]:
        body.append(_text("What was done", weight="Bolder"))
        body.append(_text("\n\n".join(escape(line) for line in message["steps"])))
    if message["evidence"]:
        body.append(_text("Evidence", weight="Bolder"))
        for item in message["evidence"]:
            lines = [f"{item['name']} ({item['outcome']}): {item['summary']}", *item["excerpt"]]
            body.append(_text("\n\n".join(escape(line) for line in lines)))
    titles = {"audit": "Open the execution", "alert": "Alert source"}
    actions = [
        {"type": "Action.OpenUrl", "title": titles[name], "url": url}
        for name, url in sorted(message["links"].items(), key=lambda link: link[0] != "audit")
        if url.lower().startswith(("http://", "https://"))
    ]
    card: dict[str, Any] = {
        "$schema": SCHEMA,
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": body,
    }
    if actions:
        card["actions"] = actions
    return {
        "type": "message",
        "attachments": [{"contentType": CONTENT_TYPE, "contentUrl": None, "content": card}],
    }
