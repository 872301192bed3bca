"""Choosing the address to probe: blackbox_exporter's ``preferred_ip_protocol`` and
``ip_protocol_fallback`` for the dns and icmp probers.

A host name is resolved in the preferred family (``ip6`` unless the module says
``ip4``); when it has no address there and the fallback is on (the default), in the
other family. An IP literal is used as written, unless it is of the other family and
the fallback is off. Writes ``probe_dns_lookup_time_seconds``, ``probe_ip_protocol``
and ``probe_ip_addr_hash`` as blackbox does.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass

from monitor.probes import context, targets

_FAMILY = {"ip4": socket.AF_INET, "ip6": socket.AF_INET6}
_NAME = {socket.AF_INET: "ip4", socket.AF_INET6: "ip6"}


@dataclass(frozen=True)
class Chosen:
    address: str
    family: socket.AddressFamily
    seconds: float  # how long resolving took

    @property
    def version(self) -> int:
        return 6 if self.family == socket.AF_INET6 else 4


async def choose(p: context.Probe, preferred: str, fallback: bool) -> Chosen | None:
    """The address of ``p.target`` to probe, or None (the reason is in the trace)."""
    host = p.target.host
    first = _FAMILY[preferred]
    order = [first, socket.AF_INET if first == socket.AF_INET6 else socket.AF_INET6]
    if not fallback:
        order = order[:1]
    start = time.perf_counter()
    chosen = None
    ip = p.target.ip
    if ip is not None:
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        if family in order:
            chosen = Chosen(str(ip), family, 0.0)
        else:
            p.trace(
                f"address {host} is {_NAME[family]} but preferred_ip_protocol is "
                f"{preferred} and ip_protocol_fallback is false"
            )
            return None
    else:
        loop = asyncio.get_running_loop()
        for family in order:
            p.trace(f"resolving {host!r} ({_NAME[family]})")
            try:
                infos = await loop.getaddrinfo(host, None, family=family, type=socket.SOCK_DGRAM)
            except (OSError, UnicodeError) as exc:
                p.trace(f"resolving {host!r} ({_NAME[family]}) failed: {exc}")
                continue
            if infos:
                chosen = Chosen(str(infos[0][4][0]), family, time.perf_counter() - start)
                break
        if chosen is None:
            return None
        p.trace(f"resolved {host!r} to {chosen.address}")
    p.out.gauge(
        "probe_dns_lookup_time_seconds",
        "Returns the time taken for probe dns lookup in seconds",
        chosen.seconds,
    )
    p.out.gauge(
        "probe_ip_protocol", "Specifies whether probe ip protocol is IP4 or IP6", chosen.version
    )
    p.out.gauge(
        "probe_ip_addr_hash",
        "Specifies the hash of IP address. It's useful to detect if the IP address changes.",
        targets.ip_hash(chosen.address),
    )
    return chosen
