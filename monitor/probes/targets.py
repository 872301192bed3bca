"""Reading probe targets and checking them against a module's allowlist.

``/probe`` would otherwise let anyone who can reach the service make it connect
anywhere (server-side request forgery). Every target is parsed into a host and port
first and refused unless the module's ``allow`` admits it. Host names are matched as
written; IP literals only by ``cidrs`` (or a host pattern that is exactly ``*``).
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
import urllib.parse
from dataclasses import dataclass

from monitor.errors import ProbeError
from monitor.probes import config

_SPACE = re.compile(r"\s")
DEFAULT_PORTS = {"http": 80, "https": 443, "postgres": 5432, "postgresql": 5432, "redis": 6379}
DEFAULT_PORTS["dns"] = 53


@dataclass(frozen=True)
class Target:
    """A parsed target: what the prober connects to."""

    raw: str
    host: str
    port: int
    scheme: str = ""
    url: str = ""
    path: str = ""

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None


def parse(prober: str, raw: str) -> Target:
    """Parse ``raw`` for ``prober``; a ProbeError says what is wrong with it."""
    if not raw:
        raise ProbeError("target parameter is missing")
    if _SPACE.search(raw):
        raise ProbeError(f"target {raw!r} contains white space")
    if prober == "http":
        url = raw if "://" in raw else f"http://{raw}"
        return _url(raw, url, ("http", "https"))
    if prober in ("postgres", "redis") and "://" in raw:
        schemes = ("postgres", "postgresql") if prober == "postgres" else ("redis",)
        return _url(raw, raw, schemes)
    if prober == "icmp":
        return _icmp(raw)
    if prober == "dns" and raw.count(":") > 1 and not raw.startswith("["):
        try:  # as blackbox reads it: a bare IPv6 address is the server, on port 53
            return Target(raw=raw, host=str(ipaddress.IPv6Address(raw)), port=53)
        except ValueError:
            pass
    host, port = _host_port(raw, DEFAULT_PORTS.get(prober))
    return Target(raw=raw, host=host, port=port)


def _icmp(raw: str) -> Target:
    """An icmp target is a host name or an address (``::1`` or ``[::1]``), no port."""
    host = raw[1:-1] if raw.startswith("[") and raw.endswith("]") else raw
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if ":" in host or "/" in host or not host.strip("."):
            raise ProbeError(
                f"target {raw!r}: an icmp target is a host name or an IP address, no port"
            ) from None
    return Target(raw=raw, host=host, port=0)


def _url(raw: str, url: str, schemes: tuple[str, ...]) -> Target:
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ProbeError(f"target {raw!r} is not a valid URL: {exc}") from exc
    if parts.scheme not in schemes:
        raise ProbeError(
            f"target {raw!r}: scheme {parts.scheme!r} is not one of {', '.join(schemes)}"
        )
    if parts.username is not None or parts.password is not None:
        raise ProbeError(
            f"target {raw.split('@')[-1]!r} must not carry credentials; "
            "put them in the module configuration"
        )
    if not parts.hostname:
        raise ProbeError(f"target {raw!r} has no host")
    return Target(
        raw=raw,
        host=parts.hostname,
        port=port or DEFAULT_PORTS[parts.scheme],
        scheme=parts.scheme,
        url=url,
        path=parts.path.lstrip("/"),
    )


def _host_port(raw: str, default: int | None) -> tuple[str, int]:
    if raw.startswith("["):  # [::1]:5432
        host, _, rest = raw[1:].partition("]")
        port_text = rest.removeprefix(":") if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise ProbeError(f"target {raw!r} is not host:port")
    elif raw.count(":") == 1:
        host, port_text = raw.split(":")
    elif raw.count(":") == 0:
        host, port_text = raw, ""
    else:
        raise ProbeError(f"target {raw!r}: write IPv6 addresses as [addr]:port")
    if not host:
        raise ProbeError(f"target {raw!r} has no host")
    if not port_text:
        if default is None:
            raise ProbeError(f"target {raw!r} needs a port (host:port)")
        return host, default
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ProbeError(f"target {raw!r}: port {port_text!r} is not a number 1-65535")
    return host, int(port_text)


def check(allow: config.Allow, module_name: str, target: Target) -> None:
    """Raise ProbeError unless ``allow`` admits the target."""
    if allow.empty:
        raise ProbeError(
            f"module {module_name!r} allows no targets; list them under 'allow' "
            "(hosts, cidrs or urls) in the probe configuration"
        )
    host = target.host.lower().rstrip(".")
    ip = target.ip
    if ip is not None:
        if any(ip.version == net.version and ip in net for net in allow.cidrs):
            return
        if "*" in allow.hosts:
            return
    elif any(fnmatch.fnmatchcase(host, pattern.lower()) for pattern in allow.hosts):
        return
    if any(pattern.fullmatch(target.raw) for pattern in allow.urls):
        return
    kind = "address" if ip is not None else "host"
    lists = "allow.cidrs" if ip is not None else "allow.hosts"
    raise ProbeError(
        f"target {target.raw!r} is not allowed for module {module_name!r}: "
        f"{kind} {host!r} matches nothing in {lists} or allow.urls"
    )
