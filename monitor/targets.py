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


class Notifier(_Strict):
    """Where ``notify`` sends: a Slack-compatible incoming webhook or a generic JSON one."""

    kind: Literal["slack", "webhook"]
    url: secrets.SecretRef | str
    headers: dict[str, secrets.SecretValue | str] = {}
    timeout: durations.Seconds = Field(10.0, gt=0, le=120)
    retries: int = Field(2, ge=0, le=10)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: secrets.SecretRef | str) -> secrets.SecretRef | str:
        if isinstance(value, str) and not re.match(r"https?://[^/\s]+", value):
            raise ValueError(
                f"invalid URL {value!r}: use http(s)://host/path, or "
                "{env: NAME} / {file: PATH} for a secret URL"
            )
        return value

    def describe_url(self) -> str:
        return secrets.show(self.url) if isinstance(self.url, secrets.SecretRef) else self.url
