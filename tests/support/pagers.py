"""Pagers on 127.0.0.1 for tests: real servers that check what they are sent as the real
services do.

- :class:`Service` is an HTTP endpoint (PagerDuty's Events API v2, a Teams incoming
  webhook) that validates each JSON body against the service's documented shape
  (``tests/fixtures/schemas/``) and answers as the service does: PagerDuty 202
  ``{"status": "success", "dedup_key": ...}`` or 400 ``invalid event``; Teams 202. Its
  ``replies`` are statuses to answer first (a 500, ...); with ``hold`` it answers only
  once ``release`` is set (a service that times out).
- :class:`Mailbox` is an SMTP server (aiosmtpd, in its own thread) that requires
  STARTTLS (a trustme certificate), or speaks TLS from the first byte, and checks
  AUTH against one user when given one.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

SCHEMAS = Path(__file__).resolve().parent.parent / "fixtures" / "schemas"
ROUTING_KEY = "R0ut1ngKeyOfTestsAbCdEf012345678"  # 32 characters, as PagerDuty's are


def validator(name: str) -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMAS / name).read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


class Service:
    def __init__(self, kind: str, *, hold: bool = False) -> None:
        assert kind in ("pagerduty", "teams")
        self.kind = kind
        self.check = validator(
            "pagerduty-event-v2.json" if kind == "pagerduty" else "teams-adaptive-card-message.json"
        )
        self.received: list[Any] = []  # every body, valid or not
        self.accepted: list[Any] = []  # the bodies answered 2xx
        self.replies: list[int] = []
        self.called = threading.Event()
        self.release = threading.Event()
        self.changed = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                outer.called.set()
                if hold:
                    outer.release.wait(60)  # bounded: never hang the test run
                status, body = outer.answer(self.headers.get("content-type", ""), raw)
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v2/enqueue"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, content_type: str, raw: bytes) -> tuple[int, Any]:
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        self.received.append(body)
        if self.replies:
            return self.replies.pop(0), {"status": "error", "message": "scripted failure"}
        errors = []
        if not content_type.startswith("application/json"):
            errors.append(f"content-type {content_type!r} is not application/json")
        if body is None:
            errors.append("body is not JSON")
        else:
            errors += [e.message for e in self.check.iter_errors(body)]
        if errors:
            if self.kind == "pagerduty":
                return 400, {
                    "status": "invalid event",
                    "message": "Event object is invalid",
                    "errors": errors,
                }
            return 400, {"error": "; ".join(errors)}
        with self.changed:
            self.accepted.append(body)
            self.changed.notify_all()
        if self.kind == "teams":
            return 202, None
        return 202, {
            "status": "success",
            "message": "Event processed",
            "dedup_key": body.get("dedup_key") or uuid.uuid4().hex,
        }

    def events(self, action: str) -> list[dict[str, Any]]:
        return [e for e in self.accepted if e.get("event_action") == action]

    def wait(self, action: str, count: int = 1, timeout: float = 20.0) -> list[dict[str, Any]]:
        """The accepted events of ``action`` once there are ``count`` of them."""
        with self.changed:
            if not self.changed.wait_for(lambda: len(self.events(action)) >= count, timeout):
                raise AssertionError(f"no {count} {action} event(s) within {timeout}s")
        return self.events(action)


@contextlib.contextmanager
def service(kind: str, *, hold: bool = False) -> Iterator[Service]:
    endpoint = Service(kind, hold=hold)
    endpoint.thread.start()
    try:
        yield endpoint
    finally:
        endpoint.release.set()
        endpoint.server.shutdown()
        endpoint.server.server_close()


@dataclass
class Mailbox:
    host: str
    port: int
    ca_file: Path
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    tls_sessions: int = 0
    refuse: str | None = None  # an SMTP reply to every RCPT TO: "550 5.1.1 no such user"


class _Handler:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.box.refuse:
            return self.box.refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        transport = server.transport
        tls = transport is not None and transport.get_extra_info("ssl_object") is not None
        if session.ssl is not None or tls:
            self.box.tls_sessions += 1
        raw = envelope.original_content or b""
        mail = message_from_bytes(raw, policy=policy.default)
        assert isinstance(mail, EmailMessage)
        self.box.messages.append(mail)
        self.box.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


@contextlib.contextmanager
def mailbox(
    tmp_path: Path,
    *,
    user: tuple[str, str] | None = None,
    implicit_tls: bool = False,
) -> Iterator[Mailbox]:
    """An SMTP server on 127.0.0.1 requiring STARTTLS (or TLS on connect) and, with
    ``user``, AUTH as that user; its CA certificate in ``ca_file``."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file = tmp_path / "smtp-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    box = Mailbox("127.0.0.1", 0, ca_file)

    def authenticate(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        login = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode())
        if user is not None and login == user:
            box.logins.append(user[0])
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    kwargs: dict[str, Any] = {
        "authenticator": authenticate,
        "auth_required": user is not None,
        "auth_require_tls": True,
    }
    if implicit_tls:
        kwargs["ssl_context"] = context
    else:
        kwargs.update(tls_context=context, require_starttls=True)
    with contextlib.closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        box.port = probe.getsockname()[1]
    controller = Controller(_Handler(box), hostname="127.0.0.1", port=box.port, **kwargs)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()
