"""Probe modules: the strict YAML file behind ``/probe?module=``.

The file follows blackbox_exporter's ``modules:`` layout, plus an ``allow`` list per
module (or one at the top for every module) and the service-wide probe limits::

    max_concurrent_probes: 100
    timeout_offset: 0.5s
    allow: {hosts: ["*.conea.io"], cidrs: ["10.0.0.0/8"]}
    modules:
      http_2xx: {prober: http, timeout: 5s}

The file may be blackbox_exporter's own ``blackbox.yml``: its http, tcp and grpc
options load under their names, and each option of blackbox_exporter that conea-monitor
does not implement is an error naming it (:mod:`monitor.probes.blackbox`).

Unknown keys, an unknown prober, a section for another prober, a bad regular
expression, an unsafe HTTP method without ``allow_unsafe_methods`` or a missing
certificate file are errors when the file loads, each naming ``file:line:column`` and
the key. Every regular expression in the file is compiled with RE2, so matching takes
time linear in the input whatever the pattern.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import ssl
import warnings
from pathlib import Path
from typing import Annotated, Any, Literal

import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pydantic
import re2
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from monitor import durations, yamlfile
from monitor.errors import ConfigError
from monitor.probes import blackbox

PROBERS = ("http", "tcp", "postgres", "redis", "dns", "icmp", "grpc")

Duration = durations.Seconds

_SIZE = re.compile(r"(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB)?")
_SIZE_UNIT = {None: 1, "B": 1, "KB": 1 << 10, "KiB": 1 << 10, "MB": 1 << 20, "MiB": 1 << 20}
_SIZE_UNIT.update({"GB": 1 << 30, "GiB": 1 << 30})
MAX_BODY_SIZE_LIMIT = 64 << 20


def parse_size(value: Any) -> int:
    """``"1MiB"``, ``"512KB"`` or a number of bytes -> bytes (units are powers of
    1024, as blackbox_exporter's ``body_size_limit`` reads them)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as '1MiB', got {value!r}")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and (match := _SIZE.fullmatch(value.strip())):
        size = int(match[1]) * _SIZE_UNIT[match[2]]
    else:
        raise ValueError(f"expected a size such as '1MiB' or '512KiB', got {value!r}")
    if not 0 < size <= MAX_BODY_SIZE_LIMIT:
        raise ValueError(f"must be between 1 byte and 64MiB, got {value!r}")
    return size


ByteSize = Annotated[int, pydantic.BeforeValidator(parse_size)]

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


def compile_regex(value: Any) -> Any:
    """Compile a regular expression with RE2 (linear-time matching; no backreferences
    or lookaround). The result has ``search``, ``fullmatch`` and ``pattern``."""
    if not isinstance(value, str):
        raise ValueError(f"expected a regular expression (a string), got {value!r}")
    try:
        return re2.compile(value, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args else str(exc)
        if isinstance(reason, bytes):  # pragma: no cover - depends on the binding
            reason = reason.decode(errors="replace")
        raise ValueError(
            f"invalid regular expression {value!r}: {reason} (RE2 syntax: "
            "no backreferences or lookaround)"
        ) from None


Regex = Annotated[
    Any,
    pydantic.PlainValidator(compile_regex),
    pydantic.PlainSerializer(lambda pattern: pattern.pattern, return_type=str),
]
"""A regular expression from the file, compiled with RE2 when the file loads."""

SAFE_METHODS = ("GET", "HEAD")


def _against_base(value: Path | None, info: pydantic.ValidationInfo) -> Path | None:
    """A relative path in the file is relative to the file's directory."""
    base = info.context.get("base") if isinstance(info.context, dict) else None
    if value is None or value.is_absolute() or base is None:
        return value
    return Path(base) / value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class Allow(Strict):
    """Targets a module may probe; a target passes if any one list admits it.

    ``hosts`` are shell-style patterns matched against the host name as written
    (``*.conea.io``, ``db-?.internal``, ``*`` for any); ``cidrs`` admit IP-literal
    targets; ``urls`` are regular expressions matched against the whole target.
    """

    hosts: list[str] = []
    cidrs: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    urls: list[Regex] = []

    @property
    def empty(self) -> bool:
        return not (self.hosts or self.cidrs or self.urls)


TLSVersion = Literal["TLS10", "TLS11", "TLS12", "TLS13"]
_TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
IPProtocol = Literal["ip4", "ip6"]
"""blackbox_exporter's ``preferred_ip_protocol``; unset, the resolver's order."""


class TLSConfig(Strict):
    """TLS settings for the http, tcp, redis and grpc probers (blackbox's ``tls_config``)."""

    insecure_skip_verify: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    server_name: str | None = None
    min_version: TLSVersion | None = None
    max_version: TLSVersion | None = None

    @pydantic.field_validator("ca_file", "cert_file", "key_file")
    @classmethod
    def _relative(cls, value: Path | None, info: pydantic.ValidationInfo) -> Path | None:
        return _against_base(value, info)

    @pydantic.model_validator(mode="after")
    def _pair(self) -> TLSConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together")
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: no such file {str(path)!r}")
        if self.min_version and self.max_version and self.min_version > self.max_version:
            raise ValueError(
                f"min_version {self.min_version} is above max_version {self.max_version}"
            )
        return self

    def context(self) -> ssl.SSLContext:
        """An SSL context for these settings (built once, at load)."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if self.insecure_skip_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.cert_file is not None and self.key_file is not None:
            ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
        with warnings.catch_warnings():
            # TLS 1.0 and 1.1 are deprecated: a module that asks for them means it
            # (to see whether a server still accepts them)
            warnings.simplefilter("ignore", DeprecationWarning)
            if self.min_version is not None:
                ctx.minimum_version = _TLS_VERSIONS[self.min_version]
            if self.max_version is not None:
                ctx.maximum_version = _TLS_VERSIONS[self.max_version]
        return ctx


class HeaderMatch(Strict):
    header: str
    regexp: Regex
    allow_missing: bool = False


def _exist(**paths: Path | None) -> None:
    """A secret file named in the module must exist when the file loads (it is read
    again at each probe)."""
    for name, path in paths.items():
        if path is not None and not path.is_file():
            raise ValueError(f"{name}: no such file {str(path)!r}")


def _read_secret(path: Path, what: str) -> str:
    """A secret file's text, read now (a rotated secret is picked up); LookupError
    names the file, never the value."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise LookupError(f"cannot read {what} {str(path)!r}: {exc.strerror}") from None


class BasicAuth(Strict):
    """HTTP basic authentication (blackbox's ``basic_auth``); files are read at each probe."""

    username: str = ""
    username_file: Path | None = None
    password: SecretStr | None = None
    password_file: Path | None = None

    @pydantic.field_validator("username_file", "password_file")
    @classmethod
    def _relative(cls, value: Path | None, info: pydantic.ValidationInfo) -> Path | None:
        return _against_base(value, info)

    @pydantic.model_validator(mode="after")
    def _one_each(self) -> BasicAuth:
        if self.username and self.username_file is not None:
            raise ValueError("give username or username_file, not both")
        if self.password is not None and self.password_file is not None:
            raise ValueError("give password or password_file, not both")
        _exist(username_file=self.username_file, password_file=self.password_file)
        return self

    def header(self) -> str:
        user = self.username
        if self.username_file is not None:
            user = _read_secret(self.username_file, "username_file")
        password = self.password.get_secret_value() if self.password is not None else ""
        if self.password_file is not None:
            password = _read_secret(self.password_file, "password_file")
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Authorization(Strict):
    """An ``Authorization: <type> <credentials>`` header (blackbox's ``authorization``)."""

    type: Annotated[str, Field(pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")] = "Bearer"
    credentials: SecretStr | None = None
    credentials_file: Path | None = None

    @pydantic.field_validator("credentials_file")
    @classmethod
    def _relative(cls, value: Path | None, info: pydantic.ValidationInfo) -> Path | None:
        return _against_base(value, info)

    @pydantic.field_validator("type")
    @classmethod
    def _not_basic(cls, value: str) -> str:
        if value.lower() == "basic":
            raise ValueError("authorization type cannot be 'Basic'; use basic_auth")
        return value

    @pydantic.model_validator(mode="after")
    def _one_source(self) -> Authorization:
        if self.credentials is not None and self.credentials_file is not None:
            raise ValueError("give credentials or credentials_file, not both")
        _exist(credentials_file=self.credentials_file)
        return self

    def header(self) -> str:
        if self.credentials_file is not None:
            secret = _read_secret(self.credentials_file, "credentials_file")
        else:
            secret = self.credentials.get_secret_value() if self.credentials else ""
        return f"{self.type} {secret}"


_HTTP_VERSION = re.compile(r"HTTP/(1\.0|1\.1|2|2\.0|3|3\.0)")


class HTTPConfig(Strict):
    # before ``method``, whose validator reads it
    allow_unsafe_methods: bool = False
    method: str = "GET"
    headers: dict[str, str] = {}
    body: str | None = None
    valid_status_codes: list[Annotated[int, Field(ge=100, le=599)]] = []
    valid_http_versions: list[str] = []
    preferred_ip_protocol: IPProtocol | None = None
    ip_protocol_fallback: bool = True
    follow_redirects: bool = True
    no_follow_redirects: bool | None = None  # blackbox's older name, inverted
    enable_http2: bool | None = None
    basic_auth: BasicAuth | None = None
    authorization: Authorization | None = None
    bearer_token: SecretStr | None = None
    bearer_token_file: Path | None = None
    max_redirects: Annotated[int, Field(ge=0, le=50)] = 10
    fail_if_ssl: bool = False
    fail_if_not_ssl: bool = False
    body_size_limit: ByteSize = 1 << 20
    fail_if_body_matches_regexp: list[Regex] = []
    fail_if_body_not_matches_regexp: list[Regex] = []
    fail_if_header_matches: list[HeaderMatch] = []
    fail_if_header_not_matches: list[HeaderMatch] = []
    tls_config: TLSConfig = TLSConfig()

    @pydantic.model_validator(mode="before")
    @classmethod
    def _old_redirect_flag(cls, data: Any) -> Any:
        """``no_follow_redirects: true`` is ``follow_redirects: false`` (it wins, as in
        blackbox_exporter)."""
        if isinstance(data, dict) and isinstance(data.get("no_follow_redirects"), bool):
            return {**data, "follow_redirects": not data["no_follow_redirects"]}
        return data

    @pydantic.field_validator("bearer_token_file")
    @classmethod
    def _relative(cls, value: Path | None, info: pydantic.ValidationInfo) -> Path | None:
        return _against_base(value, info)

    @pydantic.field_validator("valid_http_versions")
    @classmethod
    def _versions(cls, value: list[str]) -> list[str]:
        for version in value:
            if not _HTTP_VERSION.fullmatch(version):
                raise ValueError(
                    f"not an HTTP version: {version!r} (HTTP/1.0, HTTP/1.1, HTTP/2.0, HTTP/3.0)"
                )
            if version.startswith("HTTP/3"):
                raise ValueError(
                    f"{version!r}: HTTP/3 needs enable_http3, which conea-monitor does not support"
                )
        return value

    @pydantic.field_validator("enable_http2")
    @classmethod
    def _http1_only(cls, value: bool | None) -> bool | None:
        if value:
            raise ValueError(
                "conea-monitor's http prober speaks HTTP/1.1 only; "
                "remove enable_http2 or set it to false"
            )
        return value

    @pydantic.model_validator(mode="after")
    def _one_credential(self) -> HTTPConfig:
        given = [
            name
            for name in ("basic_auth", "authorization", "bearer_token", "bearer_token_file")
            if getattr(self, name) is not None
        ]
        if len(given) > 1:
            raise ValueError(f"give at most one of {', '.join(given)}")
        _exist(bearer_token_file=self.bearer_token_file)
        return self

    def authorization_header(self) -> str | None:
        """The Authorization header's value, files read now; LookupError names the
        file, never the secret."""
        if self.basic_auth is not None:
            return self.basic_auth.header()
        if self.authorization is not None:
            return self.authorization.header()
        if self.bearer_token is not None:
            return f"Bearer {self.bearer_token.get_secret_value()}"
        if self.bearer_token_file is not None:
            return f"Bearer {_read_secret(self.bearer_token_file, 'bearer_token_file')}"
        return None

    def accepts_version(self, major: int, minor: int) -> bool:
        """Whether ``valid_http_versions`` (any, when empty) admits HTTP/major.minor."""
        if not self.valid_http_versions:
            return True
        wanted = {v if "." in v else f"{v}.0" for v in self.valid_http_versions}
        return f"HTTP/{major}.{minor}" in wanted

    @pydantic.field_validator("method")
    @classmethod
    def _method(cls, value: str, info: pydantic.ValidationInfo) -> str:
        if not re.fullmatch(r"[A-Za-z]{1,20}", value):
            raise ValueError(f"not an HTTP method: {value!r}")
        method = value.upper()
        if method not in SAFE_METHODS and not info.data.get("allow_unsafe_methods"):
            raise ValueError(
                f"method {method!r} can change state on the target; only GET and HEAD "
                "are allowed unless the module opts in with 'allow_unsafe_methods: true' "
                "in its http section (give such a module a narrow 'allow' list)"
            )
        return method


class ExpectLabel(Strict):
    name: Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]{0,99}$")]
    value: str


class QueryResponse(Strict):
    """One step of a tcp conversation: wait for a line matching ``expect`` (or exactly
    the bytes ``expect_bytes``), then ``send`` a line (``${1}`` takes a group of the
    last match; YAML ``!!binary`` sends bytes), or upgrade to TLS. ``labels`` are
    reported on ``probe_expect_info`` from ``expect``'s match."""

    expect: Regex | None = None
    expect_bytes: Annotated[bytes, Field(min_length=1, max_length=65536)] | None = None
    labels: list[ExpectLabel] = []
    send: str | bytes | None = None
    starttls: bool = False

    @pydantic.field_validator("expect_bytes", mode="before")
    @classmethod
    def _bytes(cls, value: Any) -> Any:
        return value.encode() if isinstance(value, str) else value

    @pydantic.model_validator(mode="after")
    def _one_expectation(self) -> QueryResponse:
        if self.expect is not None and self.expect_bytes is not None:
            raise ValueError("expect and expect_bytes are mutually exclusive")
        if self.labels and self.expect is None:
            raise ValueError("labels take their values from expect's match; give expect")
        return self


class TCPConfig(Strict):
    tls: bool = False
    tls_config: TLSConfig = TLSConfig()
    query_response: list[QueryResponse] = []
    preferred_ip_protocol: IPProtocol | None = None
    ip_protocol_fallback: bool = True
    source_ip_address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None


_METADATA_KEY = re.compile(r"[0-9a-z_.-]{1,100}")


class GRPCConfig(Strict):
    """blackbox's ``grpc`` section: a ``grpc.health.v1.Health/Check`` of ``service``."""

    service: Annotated[str, Field(max_length=1000)] = ""
    tls: bool = False
    tls_config: TLSConfig = TLSConfig()
    preferred_ip_protocol: IPProtocol | None = None
    ip_protocol_fallback: bool = True
    # gRPC metadata sent with the check; values are kept secret (they often carry a token)
    metadata: dict[str, list[SecretStr]] = {}

    @pydantic.field_validator("tls_config")
    @classmethod
    def _grpc_tls(cls, value: TLSConfig) -> TLSConfig:
        # grpcio's TLS takes roots, a key pair and a name to verify, nothing more
        for name in ("insecure_skip_verify", "min_version", "max_version"):
            if getattr(value, name):
                raise ValueError(f"{name} is not supported by the grpc prober")
        return value

    @pydantic.field_validator("metadata")
    @classmethod
    def _keys(cls, value: dict[str, list[SecretStr]]) -> dict[str, list[SecretStr]]:
        for key in value:
            low = key.lower()
            if not _METADATA_KEY.fullmatch(low) or low.startswith("grpc-") or low.endswith("-bin"):
                raise ValueError(
                    f"metadata key {key!r}: use letters, digits, '-', '_' or '.' "
                    "(not grpc-*, not *-bin)"
                )
        return {key.lower(): values for key, values in value.items()}


class Credentials(Strict):
    """A password from an environment variable or a file, read at each probe."""

    password_env: str | None = None
    password_file: Path | None = None

    @pydantic.field_validator("password_file")
    @classmethod
    def _relative(cls, value: Path | None, info: pydantic.ValidationInfo) -> Path | None:
        return _against_base(value, info)

    @pydantic.model_validator(mode="after")
    def _one_source(self) -> Credentials:
        if self.password_env is not None and self.password_file is not None:
            raise ValueError("give password_env or password_file, not both")
        return self

    def password(self) -> str | None:
        """The password, read now (so a rotated secret is picked up); LookupError
        names the variable or file, never the value."""
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if value is None:
                raise LookupError(f"environment variable {self.password_env!r} is not set")
            return value
        if self.password_file is not None:
            try:
                return self.password_file.read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as exc:
                raise LookupError(
                    f"cannot read password file {str(self.password_file)!r}: {exc.strerror}"
                ) from None
        return None

    def password_or_none(self) -> tuple[str | None, str]:
        """The password and a note on where it came from. An unset ``password_env`` is no
        password (a server without one works; one that wants a password refuses the
        probe, and the note says why); an unreadable ``password_file`` is a LookupError."""
        try:
            password = self.password()
        except LookupError as exc:
            if self.password_env is None:
                raise
            return None, f"{exc}: connecting without a password"
        if password is None:
            return None, "no password configured"
        source = "password_file" if self.password_file is not None else "password_env"
        return password, f"password from {source}"


class PostgresConfig(Credentials):
    user: str = "postgres"
    database: str = "postgres"
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = "prefer"


class RedisConfig(Credentials):
    username: str | None = None
    tls: bool = False
    tls_config: TLSConfig = TLSConfig()


def unsupported(name: str, value: Any, why: str = "") -> None:
    """Reject an option of blackbox_exporter's that conea-monitor does not implement."""
    if value:
        raise ValueError(f"{name} is not supported by conea-monitor{why}")


def _dns_name(kind: str, parse: Any, value: str) -> str:
    try:
        parse(value)
    except Exception:
        raise ValueError(f"unknown DNS {kind} {value!r}") from None
    return value.upper()


class RRValidator(Strict):
    """Checks on one section of a DNS answer, each RR written as blackbox writes it
    (``name<TAB>ttl<TAB>class<TAB>type<TAB>data``)."""

    fail_if_matches_regexp: list[Regex] = []
    fail_if_not_matches_regexp: list[Regex] = []
    fail_if_all_match_regexp: list[Regex] = []
    fail_if_none_matches_regexp: list[Regex] = []


class DNSConfig(Strict):
    """blackbox_exporter's ``dns`` section, key for key."""

    query_name: Annotated[str, Field(min_length=1, max_length=253)]
    query_type: str = "ANY"
    query_class: str = "IN"
    transport_protocol: Literal["udp", "tcp"] = "udp"
    preferred_ip_protocol: IPProtocol = "ip6"
    ip_protocol_fallback: bool = True
    source_ip_address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    recursion_desired: bool = True
    dns_over_tls: bool = False
    tls_config: dict[str, Any] | None = None
    valid_rcodes: list[str] = ["NOERROR"]
    validate_answer_rrs: RRValidator = RRValidator()
    validate_authority_rrs: RRValidator = RRValidator()
    validate_additional_rrs: RRValidator = RRValidator()

    @pydantic.field_validator("query_type")
    @classmethod
    def _type(cls, value: str) -> str:
        return _dns_name("query_type", dns.rdatatype.from_text, value)

    @pydantic.field_validator("query_class")
    @classmethod
    def _class(cls, value: str) -> str:
        return _dns_name("query_class", dns.rdataclass.from_text, value)

    @pydantic.field_validator("valid_rcodes")
    @classmethod
    def _rcodes(cls, value: list[str]) -> list[str]:
        return [_dns_name("rcode", dns.rcode.from_text, rcode) for rcode in value]

    @pydantic.field_validator("dns_over_tls")
    @classmethod
    def _no_tls(cls, value: bool) -> bool:
        unsupported("dns_over_tls", value)
        return value

    @pydantic.field_validator("tls_config")
    @classmethod
    def _no_tls_config(cls, value: dict[str, Any] | None) -> None:
        unsupported("tls_config", value is not None, " (it applies to dns_over_tls only)")
        return None


class ICMPConfig(Strict):
    """blackbox_exporter's ``icmp`` section, key for key."""

    preferred_ip_protocol: IPProtocol = "ip6"
    ip_protocol_fallback: bool = True
    source_ip_address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    payload_size: Annotated[int, Field(ge=0, le=65000)] = 0
    dont_fragment: bool = False
    ttl: Annotated[int, Field(ge=0, le=255)] = 0

    @pydantic.model_validator(mode="after")
    def _ip4_only(self) -> ICMPConfig:
        if self.dont_fragment and self.preferred_ip_protocol != "ip4":
            raise ValueError("dont_fragment applies to ip4 only: set preferred_ip_protocol: ip4")
        return self


class Module(Strict):
    prober: str
    timeout: Duration | None = None
    allow: Allow | None = None
    http: HTTPConfig | None = None
    tcp: TCPConfig | None = None
    postgres: PostgresConfig | None = None
    redis: RedisConfig | None = None
    dns: DNSConfig | None = None
    icmp: ICMPConfig | None = None
    grpc: GRPCConfig | None = None

    @pydantic.field_validator("prober")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in PROBERS and value in blackbox.PROBERS:
            raise ValueError(
                f"blackbox_exporter prober {value!r} is not supported by conea-monitor"
            )
        if value not in PROBERS:
            raise ValueError(f"unknown prober {value!r} (known: {', '.join(PROBERS)})")
        return value

    @pydantic.field_validator("http", "tcp", "postgres", "redis", "dns", "icmp", "grpc")
    @classmethod
    def _section_fits(cls, value: Any, info: pydantic.ValidationInfo) -> Any:
        prober = info.data.get("prober")
        if value is not None and prober is not None and info.field_name != prober:
            raise ValueError(f"section {info.field_name!r} does not apply to prober {prober!r}")
        return value

    @pydantic.model_validator(mode="after")
    def _dns_needs_query_name(self) -> Module:
        if self.prober == "dns" and self.dns is None:
            raise ValueError("prober 'dns' needs a 'dns' section with query_name")
        return self

    def section(self) -> Any:
        """This module's prober settings, defaults filled in."""
        return getattr(self, self.prober) or _DEFAULTS[self.prober]


_DEFAULTS: dict[str, BaseModel] = {
    "http": HTTPConfig(),
    "tcp": TCPConfig(),
    "postgres": PostgresConfig(),
    "redis": RedisConfig(),
    "icmp": ICMPConfig(),
    "grpc": GRPCConfig(),
}


class ProbesFile(Strict):
    max_concurrent_probes: Annotated[int, Field(gt=0)] = 100
    timeout_offset: Duration = 0.5
    default_timeout: Duration = 10.0
    allow: Allow = Allow()
    modules: dict[str, Module]

    def allow_for(self, name: str) -> Allow:
        module = self.modules[name]
        return module.allow if module.allow is not None else self.allow


def parse(text: str, filename: str, base: Path | None = None) -> ProbesFile:
    """Parse probe-module YAML; every error names ``file:line:column`` and the key.
    Relative file paths in it are taken relative to ``base``."""
    data, locator = yamlfile.load(text, filename)
    if not isinstance(data, dict):
        raise ConfigError(f"{filename}: expected a mapping with 'modules:', got {data!r}")
    try:
        return ProbesFile.model_validate(data, context={"base": base})
    except pydantic.ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            at_key = error["type"] == "extra_forbidden" or message.startswith("section ")
            if error["type"] == "extra_forbidden":
                message = blackbox.unsupported(loc) or "unknown key"
            where = locator.where(loc, key=at_key)
            problems.append(f"{where}: {yamlfile.dotted(loc)}: {message}")
        raise ConfigError("\n".join(problems)) from None


def load(path: Path) -> ProbesFile:
    try:
        text = yamlfile.read(path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read probe modules: {exc.strerror}") from exc
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return parse(text, str(path), path.parent)
