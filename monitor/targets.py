"""Named things the actions reach: PostgreSQL targets and notifiers (strict config models).

They sit in the service settings by name::

    postgres_targets:
      conea-production:
        host: db.conea.io
        dbname: conea_production
        user: conea_monitor
        password_file: /var/run/secrets/conea/pg-password
        sslmode: verify-full
    notifiers:
      oncall:
        kind: slack
        url: {env: SLACK_WEBHOOK_URL}
      pager:
        kind: pagerduty
        routing_key: {env: PAGERDUTY_ROUTING_KEY}

Credentials are references (see :mod:`monitor.secrets`), read when a connection is made.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from monitor import durations, secrets

#: Which action parameters name a configured thing: (action name prefix, parameter, what,
#: setting). Policies (monitor.policy.crossref) and jobs (monitor.jobs.config) check them.
REFERENCES = (
    ("", "notifier", "notifier", "notifiers"),
    ("postgres.", "target", "postgres target", "postgres_targets"),
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


class PostgresTarget(_Strict):
    """A PostgreSQL server the ``postgres.*`` actions connect to."""

    host: str
    port: int = Field(5432, ge=1, le=65535)
    dbname: str = "postgres"
    user: str
    password_file: Path | None = None
    password_env: str | None = None
    sslmode: SslMode = "prefer"
    sslrootcert: Path | None = None
    connect_timeout: int = Field(5, ge=1, le=300)
    application_name: str = Field("conea-monitor", min_length=1, max_length=63)

    @model_validator(mode="after")
    def _one_password(self) -> PostgresTarget:
        if self.password_file is not None and self.password_env is not None:
            raise ValueError("set at most one of password_file, password_env")
        return self

    @property
    def password(self) -> secrets.SecretRef | None:
        if self.password_file is not None:
            return secrets.SecretRef(file=self.password_file)
        if self.password_env is not None:
            return secrets.SecretRef(env=self.password_env)
        return None

    def describe(self, dbname: str | None = None) -> str:
        """``user@host:port/dbname``: safe to show in plans and logs."""
        return f"{self.user}@{self.host}:{self.port}/{dbname or self.dbname}"

    def connect_kwargs(
        self, dbname: str | None = None, redactor: secrets.Redactor | None = None
    ) -> dict[str, Any]:
        """Keyword arguments for ``psycopg.AsyncConnection.connect``; reads the password."""
        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "dbname": dbname or self.dbname,
            "user": self.user,
            "sslmode": self.sslmode,
            "connect_timeout": self.connect_timeout,
            "application_name": self.application_name,
        }
        if self.sslrootcert is not None:
            kwargs["sslrootcert"] = str(self.sslrootcert)
        ref = self.password
        if ref is not None:
            kwargs["password"] = ref.resolve()
            if redactor is not None:
                redactor.add(kwargs["password"])
        return kwargs


PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
HTTP_KINDS = ("slack", "webhook", "pagerduty", "teams")
MAX_RECIPIENTS = 50
# One address: no display name, no whitespace or control characters (a CR/LF would
# start another header), one @ with a dotless-or-dotted domain after it.
_ADDRESS = re.compile(r"[^@\s<>()\[\],;:\\\"]{1,64}@[A-Za-z0-9.-]{1,253}")
_EMAIL_FIELDS = (
    "host",
    "port",
    "starttls",
    "implicit_tls",
    "username",
    "password",
    "from_",
    "to",
    "ca_file",
)


class Notifier(_Strict):
    """Where ``notify`` sends: a Slack-compatible incoming webhook, a generic JSON one,
    PagerDuty's Events API v2, a Microsoft Teams incoming webhook, or email over SMTP.

    Per kind: ``url`` (slack, webhook, teams; pagerduty defaults to PagerDuty's
    endpoint), ``headers`` (the HTTP kinds), ``routing_key`` (pagerduty, a secret
    reference), ``host``/``port``/``starttls``/``implicit_tls``/``username``/``password``/
    ``from``/``to``/``ca_file`` (email; STARTTLS unless ``implicit_tls`` or port 465).
    A field another kind uses is an error.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    kind: Literal["slack", "webhook", "pagerduty", "teams", "email"]
    url: secrets.SecretRef | str | None = None
    headers: dict[str, secrets.SecretValue | str] = {}
    timeout: durations.Seconds = Field(10.0, gt=0, le=120)
    retries: int = Field(2, ge=0, le=10)
    routing_key: secrets.SecretRef | None = None
    host: str | None = Field(None, min_length=1, max_length=253)
    port: int | None = Field(None, ge=1, le=65535)
    starttls: bool | None = None  # email: STARTTLS (the default unless implicit TLS)
    implicit_tls: bool | None = None  # email: TLS from the first byte (default: port 465)
    username: secrets.SecretRef | str | None = None
    password: secrets.SecretRef | None = None
    from_: str | None = Field(None, alias="from")
    to: list[str] = Field([], max_length=MAX_RECIPIENTS)
    ca_file: Path | None = None  # email: CA bundle the server's certificate is checked against

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: secrets.SecretRef | str | None) -> secrets.SecretRef | str | None:
        if isinstance(value, str) and not re.match(r"https?://[^/\s]+", value):
            raise ValueError(
                f"invalid URL {value!r}: use http(s)://host/path, or "
                "{env: NAME} / {file: PATH} for a secret URL"
            )
        return value

    @field_validator("from_", "to")
    @classmethod
    def _addresses(cls, value: str | list[str] | None) -> str | list[str] | None:
        for address in [value] if isinstance(value, str) else value or []:
            if not _ADDRESS.fullmatch(address):
                raise ValueError(f"invalid email address {address!r}: write name@domain")
        return value

    @field_validator("username")
    @classmethod
    def _username(cls, value: secrets.SecretRef | str | None) -> secrets.SecretRef | str | None:
        if isinstance(value, str) and not value.strip():
            raise ValueError("is empty: leave it out for no AUTH")
        return value

    @model_validator(mode="after")
    def _fields_of_kind(self) -> Notifier:
        kind = self.kind
        given = self.model_fields_set
        wrong: list[str]
        if kind == "email":
            wrong = [f for f in ("url", "headers", "routing_key") if f in given]
        else:
            wrong = [f.rstrip("_") for f in _EMAIL_FIELDS if f in given]
            if kind != "pagerduty" and "routing_key" in given:
                wrong.append("routing_key")
        if wrong:
            raise ValueError(f"kind {kind}: {', '.join(wrong)} does not apply (remove it)")
        if kind in ("slack", "webhook", "teams") and self.url is None:
            raise ValueError(f"kind {kind}: url is required")
        if kind == "pagerduty" and self.routing_key is None:
            raise ValueError(
                "kind pagerduty: routing_key is required ({env: NAME} or {file: PATH})"
            )
        if kind == "email":
            missing = [f.rstrip("_") for f in ("host", "from_") if getattr(self, f) is None]
            if not self.to:
                missing.append("to")
            if missing:
                raise ValueError(f"kind email: {', '.join(missing)} is required")
            if (self.username is None) != (self.password is None):
                raise ValueError("kind email: set both username and password, or neither (no AUTH)")
            if self.username is not None and not self.encrypted:
                raise ValueError(
                    "kind email: credentials over an unencrypted connection: set starttls: "
                    "true or use port 465 (implicit TLS)"
                )
        return self

    @property
    def tls_on_connect(self) -> bool:
        """SMTP over TLS from the first byte (``implicit_tls``, else port 465)."""
        return self.implicit_tls if self.implicit_tls is not None else self.port == 465

    @property
    def encrypted(self) -> bool:
        return self.tls_on_connect or self.starttls is not False

    @property
    def smtp_port(self) -> int:
        if self.port is not None:
            return self.port
        return 465 if self.tls_on_connect else 587 if self.encrypted else 25

    @property
    def endpoint(self) -> secrets.SecretRef | str:
        """The URL an HTTP kind posts to (PagerDuty's own unless ``url`` says otherwise)."""
        if self.url is not None:
            return self.url
        if self.kind == "pagerduty":
            return PAGERDUTY_EVENTS_URL
        raise ValueError(f"notifier of kind {self.kind} has no URL")

    def describe_url(self) -> str:
        if self.kind == "email":
            return f"smtp://{self.host}:{self.smtp_port}"
        url = self.endpoint
        return secrets.show(url) if isinstance(url, secrets.SecretRef) else url
