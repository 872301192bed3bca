"""Reading probe targets and checking them against a module's allowlist.

``/probe`` would otherwise let anyone who can reach the service make it connect
anywhere (server-side request forgery). Every target is parsed into a host and port
first and refused unless the module's ``allow`` admits it. Host names are matched as
written; IP literals only by ``cidrs`` (or a host pattern that is exactly ``*``).
"""

from __future__ import annotations

import asyncio
import fnmatch
import ipaddress
import re
import socket
import urllib.parse
from collections.abc import Iterable
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
    if prober == "grpc" and "://" in raw:  # blackbox takes http(s)://host:port too
        return _url(raw, raw, ("http", "https"))
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


_FAMILY = {"ip4": socket.AF_INET, "ip6": socket.AF_INET6}


def choose(
    addresses: Iterable[tuple[int, str]], preferred: str | None, fallback: bool = True
) -> tuple[int, str]:
    """Pick one (family, address) to dial, as blackbox_exporter does: the first of the
    ``preferred`` family ("ip4"/"ip6"), else, with ``fallback``, the first of the other;
    without a preference, the first (the resolver's order). ProbeError when none fits."""
    found = list(addresses)
    if preferred is None:
        if found:
            return found[0]
    else:
        want = _FAMILY[preferred]
        for family, address in found:
            if family == want:
                return family, address
        if fallback and found:
            return found[0]
    only = f" over {preferred} (ip_protocol_fallback is off)" if preferred and not fallback else ""
    raise ProbeError(f"no address to dial{only}")


async def resolve(
    host: str, port: int, preferred: str | None = None, fallback: bool = True
) -> tuple[int, str]:
    """The (family, address) to dial for ``host``, resolved now and picked by
    :func:`choose`; an IP literal is its own answer. ProbeError says why none."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None:
        literal = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        return choose([(literal, host)], preferred, fallback)
    family = 0 if preferred is None or fallback else _FAMILY[preferred]
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ProbeError(f"resolving {host!r} failed: {exc}") from None
    return choose(((info[0], str(info[4][0])) for info in infos), preferred, fallback)


def ip_hash(address: str) -> int:
    """blackbox_exporter's ``probe_ip_addr_hash``: FNV-1a (32 bits) of the address's
    bytes (4 for IPv4, 16 for IPv6), so a changed address shows as a changed value."""
    value = 0x811C9DC5
    for byte in ipaddress.ip_address(address.partition("%")[0]).packed:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value
