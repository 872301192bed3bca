"""Email over SMTP through aiosmtplib: STARTTLS by default, implicit TLS on port 465.

The message has a text/plain part and a simple text/html alternative in which every
value is escaped. With no ``username``/``password`` configured nothing is
authenticated; credentials are secret references read when the mail is sent and never
sent over an unencrypted connection (the config refuses that). One try is one SMTP
session: a refused connection, a timeout or a 4xx reply is worth another try, a 5xx
reply (a refused login, sender or every recipient) is not.
"""

from __future__ import annotations

import html
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import aiosmtplib

from monitor import secrets, targets
from monitor.errors import ConfigError, PermanentActionError, TemporaryActionError

SUBJECT_LIMIT = 200


def _oneline(text: str) -> str:
    return " ".join(text.split())


def text_body(message: dict[str, Any]) -> str:
    lines = [message["title"], ""]
    lead = message["message"] or message["summary"]
    if lead:
        lines += [lead, ""]
    if message["alert"]:
        lines += [f"{k}: {v}" for k, v in sorted(message["alert"]["labels"].items())] + [""]
    if message["steps"]:
        lines += ["What was done:", *(f"- {line}" for line in message["steps"]), ""]
    if message["evidence"]:
        lines.append("Evidence:")
        for item in message["evidence"]:
            lines.append(f"- {item['name']} ({item['outcome']}): {item['summary']}")
            lines += [f"    {line}" for line in item["excerpt"]]
        lines.append("")
    names = {"audit": "Execution", "alert": "Alert source"}
    lines += [
        f"{names[name]}: {url}"
        for name, url in sorted(message["links"].items(), key=lambda link: link[0] != "audit")
    ]
    return "\n".join(lines).rstrip() + "\n"


def html_body(message: dict[str, Any]) -> str:
    e = html.escape
    parts = [f"<h2>{e(message['title'])}</h2>"]
    lead = message["message"] or message["summary"]
    if lead:
        parts.append(f"<p>{e(lead)}</p>")
    if message["alert"] and message["alert"]["labels"]:
        rows = "".join(
            f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>"
            for k, v in sorted(message["alert"]["labels"].items())
        )
        parts.append(f"<table>{rows}</table>")
    if message["steps"]:
        items = "".join(f"<li>{e(line)}</li>" for line in message["steps"])
        parts.append(f"<h3>What was done</h3><ul>{items}</ul>")
    if message["evidence"]:
        parts.append("<h3>Evidence</h3>")
        for item in message["evidence"]:
            parts.append(
                f"<p><b>{e(item['name'])}</b> ({e(item['outcome'])}): {e(item['summary'])}</p>"
            )
            if item["excerpt"]:
                parts.append(f"<pre>{e(chr(10).join(item['excerpt']))}</pre>")
    names = {"audit": "Open the execution", "alert": "Alert source"}
    links = [
        f'<a href="{e(url)}">{names[name]}</a>'
        for name, url in sorted(message["links"].items(), key=lambda link: link[0] != "audit")
        if url.lower().startswith(("http://", "https://"))
    ]
    if links:
        parts.append(f"<p>{' | '.join(links)}</p>")
    return "<html><body>" + "".join(parts) + "</body></html>\n"


def build(message: dict[str, Any], notifier: targets.Notifier) -> EmailMessage:
    """The email, ready to send: headers, a text part and an HTML alternative."""
    assert notifier.from_ is not None
    mail = EmailMessage()
    subject = _oneline(message["title"])
    mail["Subject"] = subject if len(subject) <= SUBJECT_LIMIT else subject[:199] + "…"
    mail["From"] = notifier.from_
    mail["To"] = ", ".join(notifier.to)
    mail["Date"] = formatdate(localtime=False, usegmt=True)
    mail["Message-ID"] = make_msgid(domain=notifier.from_.rsplit("@", 1)[1])
    mail["Auto-Submitted"] = "auto-generated"
    mail.set_content(text_body(message))
    mail.add_alternative(html_body(message), subtype="html")
    return mail


def shown(mail: EmailMessage) -> dict[str, Any]:
    """What a plan shows of the email: its headers and its text."""
    text = mail.get_body(("plain",))
    return {
        "from": mail["From"],
        "to": mail["To"],
        "subject": mail["Subject"],
        "text": text.get_content() if text is not None else "",
    }


def _tls(notifier: targets.Notifier) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if notifier.ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(notifier.ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"ca_file {str(notifier.ca_file)!r}: {exc}") from None
    return context


async def send(
    notifier: targets.Notifier, mail: EmailMessage, redactor: secrets.Redactor
) -> dict[str, Any]:
    """Send once; the outcome's details (the server's reply, refused recipients)."""
    assert notifier.host is not None
    username = password = None
    if notifier.username is not None and notifier.password is not None:
        username = secrets.materialize(notifier.username, redactor)
        password = secrets.materialize(notifier.password, redactor)
    where = notifier.describe_url()
    try:
        refused, reply = await aiosmtplib.send(
            mail,
            hostname=notifier.host,
            port=notifier.smtp_port,
            use_tls=notifier.tls_on_connect,
            start_tls=notifier.encrypted and not notifier.tls_on_connect,
            tls_context=_tls(notifier) if notifier.encrypted else None,
            username=username,
            password=password,
            timeout=notifier.timeout,
        )
    except aiosmtplib.SMTPResponseException as exc:
        reason = redactor.excerpt(f"{exc.code} {exc.message}")
        if 400 <= exc.code < 500:
            raise TemporaryActionError(f"{where}: SMTP {reason}", delay=1.0) from None
        raise PermanentActionError(f"{where}: SMTP {reason}") from None
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [r.code for r in exc.recipients]
        reason = redactor.excerpt(
            "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        )
        if all(400 <= code < 500 for code in codes):
            raise TemporaryActionError(
                f"{where}: every recipient refused: {reason}", delay=1.0
            ) from None
        raise PermanentActionError(f"{where}: every recipient refused: {reason}") from None
    except aiosmtplib.SMTPNotSupported as exc:  # no STARTTLS, no AUTH: another try won't help
        raise PermanentActionError(f"{where}: {redactor.excerpt(str(exc))}") from None
    except ssl.SSLCertVerificationError as exc:
        raise PermanentActionError(f"{where}: TLS: {exc.verify_message}") from None
    except (aiosmtplib.SMTPException, OSError) as exc:
        reason = redactor.excerpt(f"{type(exc).__name__}: {exc}")
        raise TemporaryActionError(f"{where}: {reason}", delay=1.0) from None
    details: dict[str, Any] = {"reply": redactor.excerpt(reply)}
    if refused:
        details["refused"] = {rcpt: f"{code} {text}" for rcpt, (code, text) in refused.items()}
    return details
