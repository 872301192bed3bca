"""Service settings: a YAML file plus ``CONEA_MONITOR_*`` environment overrides.

Strict: an unknown key is an error that names the file, the line and the key. Nested
keys are overridden with ``__``: ``CONEA_MONITOR_WEBHOOK__MAX_BODY_BYTES=2097152``.
Secrets are never read here; the models hold references (a file path or the value from
the environment) and ``monitor.auth`` reads them.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from monitor import durations, scope, targets, yamlfile
from monitor.errors import ConfigError
from monitor.jobs.config import JobConfig

ENV_PREFIX = "CONEA_MONITOR_"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


MAX_CREDENTIAL_CHARS = 4096


_Text = TypeVar("_Text", SecretStr, str)


def _not_blank(value: _Text) -> _Text:
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    if not text.strip():
        raise ValueError("must not be empty (an empty credential would let anyone in)")
    if len(text) > MAX_CREDENTIAL_CHARS:
        raise ValueError(f"must be at most {MAX_CREDENTIAL_CHARS} characters")
    return value


# A credential given as a value: never empty or whitespace only (fail closed).
Credential = Annotated[SecretStr, AfterValidator(_not_blank)]


class BasicAuth(Section):
    username: Annotated[str, AfterValidator(_not_blank)]
    password: Credential | None = None
    password_file: Path | None = None

    @model_validator(mode="after")
    def _one_password(self) -> BasicAuth:
        if (self.password is None) == (self.password_file is None):
            raise ValueError("set exactly one of password, password_file")
        return self


class WebhookSettings(Section):
    max_body_bytes: int = Field(1024 * 1024, gt=0)
    # Backpressure: while more alerts than this wait to be decided, a webhook's answer is
    # held (up to backpressure_hold_seconds) until a batch is decided, so a storm cannot
    # outrun deciding. Nothing is refused. 0: never held.
    backpressure_alerts: int = Field(5_000, ge=0, le=10_000_000)
    backpressure_hold_seconds: float = Field(2.0, gt=0, le=30)
    bearer_token: Credential | None = None
    bearer_token_file: Path | None = None
    basic_auth: BasicAuth | None = None

    @model_validator(mode="after")
    def _one_token(self) -> WebhookSettings:
        if self.bearer_token is not None and self.bearer_token_file is not None:
            raise ValueError("set at most one of bearer_token, bearer_token_file")
        return self

    @property
    def has_credentials(self) -> bool:
        return bool(self.bearer_token or self.bearer_token_file or self.basic_auth)


MAX_ACCESS_USERS = 32
MAX_USERNAME_CHARS = 100


def _username(value: str) -> str:
    if len(value) > MAX_USERNAME_CHARS:
        raise ValueError(f"must be at most {MAX_USERNAME_CHARS} characters")
    if ":" in value or any(not ch.isprintable() for ch in value):
        raise ValueError("must not contain ':' or control characters (HTTP basic auth)")
    return value


class AccessUser(BasicAuth):
    """A console user (HTTP basic auth) and what they may do."""

    username: Annotated[str, AfterValidator(_not_blank), AfterValidator(_username)]
    role: Literal["viewer", "operator"]


class AccessSettings(Section):
    """Who may read (viewers) and who may act (operators) besides the operator token
    (``automation.api_token``): see monitor/auth.py."""

    viewer_token: Credential | None = None
    viewer_token_file: Path | None = None
    basic_auth: list[AccessUser] = Field([], max_length=MAX_ACCESS_USERS)

    @model_validator(mode="after")
    def _one_viewer_token(self) -> AccessSettings:
        if self.viewer_token is not None and self.viewer_token_file is not None:
            raise ValueError("set at most one of viewer_token, viewer_token_file")
        seen: set[str] = set()
        for index, user in enumerate(self.basic_auth):
            if user.username in seen:
                raise PydanticCustomError(
                    "duplicate_username",
                    "username {name} is listed twice",
                    {
                        "name": repr(user.username),
                        "at": ("access", "basic_auth", index, "username"),
                    },
                )
            seen.add(user.username)
        return self


class StoreSettings(Section):
    url: str | None = None  # default: sqlite under data_dir
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL"] = "FULL"
    batch_max_alerts: int = Field(5000, gt=0)
    # A webhook whose notification is not committed by then gets 503 (Alertmanager
    # retries), and /readyz is 503 while the writer is stuck for longer than this.
    write_timeout_seconds: float = Field(10.0, gt=0, le=600)
    pool_size: int = Field(5, gt=0)


class LogSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


class KubernetesSettings(Section):
    mode: Literal["auto", "in-cluster", "kubeconfig", "none"] = "auto"
    kubeconfig: Path | None = None
    context: str | None = None


NamespacePatterns = Annotated[
    list[Annotated[str, AfterValidator(scope.check_pattern)]],
    Field(max_length=scope.MAX_PATTERNS),
]


MAX_BREAKER_WINDOW = timedelta(days=7)


class MaxActions(Section):
    """The blast-radius breaker (docs/policy.md): at most ``count`` live actions, across
    all targets, in ``window``; past it every decision is skipped until it closes."""

    count: int = Field(ge=1, le=100_000)
    window: durations.Duration
    # auto: closes by itself once the window holds fewer than ``count`` live actions;
    # manual: only resume (API or command line) closes it.
    reset: Literal["auto", "manual"] = "auto"
    notifier: str | None = None  # a name in ``notifiers``, told once when it opens

    @field_validator("window")
    @classmethod
    def _window(cls, value: timedelta) -> timedelta:
        return _positive_up_to(value, MAX_BREAKER_WINDOW)


def _positive_up_to(value: timedelta, most: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than 0s")
    if value > most:
        raise ValueError(f"must be at most {durations.format(most)} ({most.days} days)")
    return value


MAX_APPROVAL_TIMEOUT = timedelta(days=7)


class ApprovalSettings(Section):
    """Approval mode (docs/policy.md#approval): how long a request waits for an answer,
    who is asked, and the key that signs the approve/reject links."""

    timeout: durations.Duration = timedelta(minutes=30)
    notifier: str | None = None  # a name in ``notifiers``: gets each request and its links
    # The key signing the links. Unset: one the store makes once and keeps for every
    # replica (the control table).
    key_file: Path | None = None

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: timedelta) -> timedelta:
        return _positive_up_to(value, MAX_APPROVAL_TIMEOUT)


class AutomationSettings(Section):
    paused: bool = False
    # live: act within the guardrails; rehearsal: plan, verify and walk the ladder,
    # apply nothing (docs/policy.md#rehearsal); approval: as live, but a person approves
    # each step that changes something (docs/policy.md#approval). None: rehearsal while
    # no Kubernetes credentials are configured, else live.
    mode: Literal["live", "rehearsal", "approval"] | None = None
    approval: ApprovalSettings = ApprovalSettings()
    # The older switch: true is mode rehearsal, false is mode live.
    dry_run: bool | None = None
    # Namespace names or shell-style patterns (monitor/scope.py); empty allow: any.
    namespaces_allow: NamespacePatterns = []
    namespaces_deny: NamespacePatterns = list(scope.DEFAULT_DENY)
    max_concurrent_executions: int = Field(4, gt=0)
    # The operator credential for pause/resume/reload. Neither set: a random token is
    # generated once in <data_dir>/admin-token (mode 0600) and reused.
    api_token: Credential | None = None
    api_token_file: Path | None = None
    max_actions: MaxActions | None = None

    @model_validator(mode="after")
    def _one_api_token(self) -> AutomationSettings:
        if self.api_token is not None and self.api_token_file is not None:
            raise ValueError("set at most one of api_token, api_token_file")
        if (
            self.mode is not None
            and self.dry_run is not None
            and self.dry_run != (self.mode == "rehearsal")
            and not (self.mode == "approval" and self.dry_run is False)
        ):
            raise ValueError(
                f"mode {self.mode!r} and dry_run {str(self.dry_run).lower()} disagree: "
                "set mode only (dry_run: true is mode: rehearsal)"
            )
        return self

    def rehearsal(self, kube_configured: bool) -> bool:
        """Is automation in rehearsal (plans recorded, nothing applied)?"""
        if self.mode is not None:
            return self.mode == "rehearsal"
        if self.dry_run is not None:
            return self.dry_run
        return not kube_configured


class ServerSettings(Section):
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed. Empty: none, the
    # client is the TCP peer.
    trusted_proxies: list[IPvAnyNetwork] = Field([], max_length=100)


# Where an error found across sections points (a PydanticCustomError's ``at``).
_NOTIFIER_AT = ("automation", "max_actions", "notifier")


class Settings(BaseSettings):
    """Everything the service reads at start-up (and on reload, for policies)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    data_dir: Path = Path("data")
    policies: list[Path] = [Path("remediations")]
    probes_file: Path | None = None
    public_url: str = "http://127.0.0.1:9115"
    prometheus_url: str | None = None
    alertmanager_url: str | None = None
    webhook: WebhookSettings = WebhookSettings()
    access: AccessSettings = AccessSettings()
    store: StoreSettings = StoreSettings()
    log: LogSettings = LogSettings()
    kubernetes: KubernetesSettings = KubernetesSettings()
    automation: AutomationSettings = AutomationSettings()
    server: ServerSettings = ServerSettings()
    postgres_targets: dict[str, targets.PostgresTarget] = {}
    notifiers: dict[str, targets.Notifier] = {}
    jobs: list[JobConfig] = []
    verify_sweep_seconds: float = Field(10.0, gt=0)
    config_file: Path | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _known_notifier(self) -> Settings:
        limit = self.automation.max_actions
        named = [
            (limit.notifier if limit is not None else None, _NOTIFIER_AT),
            (self.automation.approval.notifier, ("automation", "approval", "notifier")),
        ]
        for name, at in named:
            if name is not None and name not in self.notifiers:
                known = ", ".join(sorted(self.notifiers)) or "none configured"
                raise PydanticCustomError(
                    "unknown_notifier",
                    "unknown notifier {name} (known: {known}); notifiers are defined under "
                    "notifiers",
                    {"name": repr(name), "known": known, "at": at},
                )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the file (the file's values arrive as init kwargs).
        return env_settings, init_settings

    @property
    def database_url(self) -> str:
        if self.store.url:
            return self.store.url
        return f"sqlite:///{(self.resolve(self.data_dir) / 'conea-monitor.db').resolve()}"

    def resolve(self, path: Path) -> Path:
        """A path from the config file is relative to that file's directory."""
        if path.is_absolute() or self.config_file is None:
            return path
        return (self.config_file.parent / path).resolve()


def load(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Settings from ``path`` (YAML) and the environment; ConfigError names file:line:key."""
    data: dict[str, Any] = {}
    locator: yamlfile.Locator | None = None
    filename = str(path) if path is not None else "<defaults>"
    if path is not None:
        try:
            text = yamlfile.read(Path(path))
        except OSError as exc:
            raise ConfigError(f"{filename}: cannot read config file: {exc.strerror}") from exc
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        loaded, locator = yamlfile.load(text, filename)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{filename}:1:1: the config file must be a mapping of keys")
        data = loaded
    data.update(overrides)
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, data, locator, filename)) from None
    if path is not None:
        settings.config_file = Path(path).resolve()
    return settings


def _describe(
    exc: ValidationError, data: dict[str, Any], locator: yamlfile.Locator | None, filename: str
) -> str:
    lines = []
    for error in exc.errors():
        loc = tuple(error.get("ctx", {}).get("at", ())) or tuple(error["loc"])
        field = yamlfile.dotted(loc)
        reason = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        variable = _from_environment(loc)
        if variable is not None:
            where = f"environment {variable}"
        elif locator is not None and loc and loc[0] in data:
            where = locator.where(loc, key=error["type"] == "extra_forbidden")
        else:
            env = ENV_PREFIX + "__".join(str(p).upper() for p in loc if isinstance(p, str))
            where = f"{filename} (or environment {env})"
        lines.append(f"{where}: {field}: {reason}")
    return "\n".join(lines)


def _from_environment(loc: tuple[Any, ...]) -> str | None:
    """The ``CONEA_MONITOR_*`` variable that set the value at ``loc`` (or a section
    holding it), if one is set: the environment overrides the file, so its value is the
    one that failed. Names are matched without regard to case, as the settings read them."""
    names = {name.upper(): name for name in os.environ}
    parts = [str(p).upper() for p in loc if isinstance(p, str)]
    for end in range(len(parts), 0, -1):
        found = names.get(ENV_PREFIX + "__".join(parts[:end]))
        if found is not None:
            return found
    return None
