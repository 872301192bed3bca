"""Keeping ``/probe`` off the service itself, whatever a module's allowlist says.

The service's admin routes (pause, resume, reload) listen on the same port as
``/probe``; a probe of ``127.0.0.1:<that port>`` would let anyone who can ask for a
probe call them. So a target is refused when it is the address and port the probe
request arrived on (the ASGI scope's ``server``), or when it is, or resolves to, a
local address (loopback, unspecified, or one of this host's own addresses) on that
port. The check runs before the prober starts, and again on the address each
connection actually reached (:mod:`monitor.probes.sessions` for http, the tcp prober
for tcp), so neither a redirect nor a name that resolves differently the second time
gets through.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

from monitor.errors import ProbeError
from monitor.probes import targets


class OwnAddress(ProbeError):
    """The target is this service: the probe fails (probe_success 0) with the reason."""


@dataclass(frozen=True)
class Own:
    """Where this service was reached: the ASGI scope's ``server`` (host, port)."""

    host: str
    port: int

    def is_self(self, address: str, port: int) -> bool:
        """Whether connecting to ``address:port`` reaches this service."""
        if port != self.port:
            return False
        return address == self.host or is_local(address)

    def refuse(self, raw: str, address: str, port: int) -> None:
        """Raise OwnAddress if ``address:port`` (what ``raw`` reaches) is this service."""
        if self.is_self(address, port):
            raise OwnAddress(
                f"target {raw!r} reaches this service itself ({address} port {port}; "
                f"this probe request arrived on {self.host}:{self.port}): "
                "conea-monitor never probes itself, whatever the module's allowlist says"
            )


def is_local(address: str) -> bool:
    """Loopback, unspecified, or an address of this host (one a socket can bind to)."""
    try:
        ip = ipaddress.ip_address(address.partition("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback or ip.is_unspecified:
        return True
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((str(ip), 0))
    except OSError:
        return False
    return True


async def check(own: Own | None, target: targets.Target) -> None:
    """Raise OwnAddress if ``target`` is, or resolves to, this service. A name is
    resolved only when the target's port is the service's; a name that does not
    resolve is left to the prober, which will fail on it."""
    if own is None or target.port != own.port:
        return
    if target.ip is not None:
        own.refuse(target.raw, target.host, target.port)
        return
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except OSError:
        return
    for info in infos:
        own.refuse(target.raw, str(info[4][0]), target.port)
