"""The ``icmp`` prober: one echo request, one matching echo reply, IPv4 or IPv6.

It needs no root: where the kernel's ``net.ipv4.ping_group_range`` admits one of the
process's groups (it governs ICMPv6 too) it uses an unprivileged ping socket
(``SOCK_DGRAM``, ``IPPROTO_ICMP``/``IPPROTO_ICMPV6``); else a raw socket if the
process has ``CAP_NET_RAW``; else the probe fails with the reason in its trace and
the log. The Helm chart sets the sysctl (see docs/helm.md). A reply counts only if
it comes from the target with the request's identifier, sequence number and payload;
at most ``payload_size`` + 68 bytes of a packet are read. Reports
``probe_icmp_duration_seconds{phase=resolve|setup|rtt}``,
``probe_icmp_reply_hop_limit`` and the address metrics of
:mod:`monitor.probes.addresses`, as blackbox_exporter does.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from monitor.probes import addresses, config, context

log = logging.getLogger(__name__)

DURATION = "probe_icmp_duration_seconds"
DURATION_HELP = "Duration of icmp request by phase"
PAYLOAD = b"conea-monitor icmp probe"
CAP_NET_RAW = 13
# Linux's values, for Pythons whose socket module lacks the names
_IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)
_IP_MTU_DISCOVER = getattr(socket, "IP_MTU_DISCOVER", 10)
_IP_PMTUDISC_DO = getattr(socket, "IP_PMTUDISC_DO", 2)
_ECHO = {socket.AF_INET: (8, 0), socket.AF_INET6: (128, 129)}  # request, reply types
_sequence = itertools.count(1)
_logged: set[str] = set()


@dataclass(frozen=True)
class Permissions:
    """What the kernel lets this process open: the ping group range, its groups and
    whether it holds CAP_NET_RAW. Read by :func:`permissions`; tests pass their own."""

    ping_group_range: tuple[int, int]
    groups: frozenset[int]
    net_raw: bool

    @property
    def ping_sockets(self) -> bool:
        low, high = self.ping_group_range
        return any(low <= gid <= high for gid in self.groups)

    def refusal(self) -> str:
        low, high = self.ping_group_range
        return (
            f"ICMP needs net.ipv4.ping_group_range to include gid {os.getegid()} "
            f"or CAP_NET_RAW (the range is '{low} {high}' and the process lacks "
            "CAP_NET_RAW); see docs/helm.md"
        )


def permissions(proc: Path = Path("/proc")) -> Permissions:
    """This process's permissions, read now (a changed sysctl counts at once)."""
    try:
        low, high = (int(v) for v in (proc / "sys/net/ipv4/ping_group_range").read_text().split())
    except (OSError, ValueError):
        low, high = 1, 0  # the kernel's default: nobody
    net_raw = False
    try:
        for line in (proc / "self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                net_raw = bool(int(line.split()[1], 16) >> CAP_NET_RAW & 1)
    except (OSError, ValueError, IndexError):
        pass
    return Permissions((low, high), frozenset({os.getegid(), *os.getgroups()}), net_raw)


async def probe(p: context.Probe) -> bool:
    return await ping(p, permissions())


async def ping(p: context.Probe, perms: Permissions) -> bool:
    """The icmp probe with the given permissions."""
    phases = dict.fromkeys(("resolve", "setup", "rtt"), 0.0)
    try:
        return await _ping(p, perms, phases)
    finally:  # also when the deadline cancels the probe
        for phase, seconds in phases.items():
            p.out.labelled(DURATION, DURATION_HELP, {"phase": phase}, seconds)


async def _ping(p: context.Probe, perms: Permissions, phases: dict[str, float]) -> bool:
    cfg: config.ICMPConfig = p.module.section()
    chosen = await addresses.choose(p, cfg.preferred_ip_protocol, cfg.ip_protocol_fallback)
    if chosen is None:
        return False
    phases["resolve"] = chosen.seconds
    start = time.perf_counter()
    opened = _open(p, cfg, chosen.family, perms)
    if opened is None:
        return False
    sock, raw = opened
    with sock:
        try:
            _configure(sock, cfg, chosen.family, raw)
        except OSError as exc:
            p.trace(f"setting up the socket failed: {exc}")
            return False
        ident = sock.getsockname()[1] if not raw else (os.getpid() ^ next(_sequence)) & 0xFFFF
        seq = next(_sequence) & 0xFFFF
        payload = (PAYLOAD * (cfg.payload_size // len(PAYLOAD) + 1))[: cfg.payload_size or None]
        packet = _echo(chosen.family, ident, seq, payload)
        phases["setup"] = time.perf_counter() - start
        kind = "a raw socket" if raw else "an unprivileged ping socket"
        p.trace(f"sending echo request id={ident} seq={seq} to {chosen.address} over {kind}")
        sent = time.perf_counter()
        try:
            await _sendto(sock, packet, (chosen.address, 0))
            async with asyncio.timeout(p.remaining()):
                hop_limit = await _reply(p, sock, chosen, raw, ident, seq, payload)
        except TimeoutError:  # an OSError too: first
            p.trace(f"timeout: no echo reply from {chosen.address} in time")
            return False
        except OSError as exc:
            p.trace(f"echo failed: {exc}")
            return False
        phases["rtt"] = time.perf_counter() - sent
    p.trace(f"echo reply from {chosen.address}" + (f" hop limit {hop_limit}" if hop_limit else ""))
    if hop_limit is not None:
        p.out.gauge(
            "probe_icmp_reply_hop_limit", "Replied packet hop limit (TTL for ipv4)", hop_limit
        )
    return True


def _open(
    p: context.Probe, cfg: config.ICMPConfig, family: socket.AddressFamily, perms: Permissions
) -> tuple[socket.socket, bool] | None:
    """An ICMP socket and whether it is raw; None (the reason traced and logged) when
    the kernel allows neither kind."""
    proto = socket.IPPROTO_ICMP if family == socket.AF_INET else socket.IPPROTO_ICMPV6
    kinds = []
    if perms.ping_sockets:
        kinds.append((socket.SOCK_DGRAM, False))
    if perms.net_raw:
        kinds.append((socket.SOCK_RAW, True))
    for kind, raw in kinds:
        try:
            return socket.socket(family, kind, proto), raw
        except PermissionError as exc:
            p.trace(f"opening {'a raw' if raw else 'a ping'} socket failed: {exc}")
        except OSError as exc:  # e.g. IPv6 disabled: not a matter of permissions
            p.trace(f"opening {'a raw' if raw else 'a ping'} socket failed: {exc}")
            return None
    reason = perms.refusal()
    p.trace(reason)
    if reason not in _logged:
        _logged.add(reason)
        log.warning("icmp probe of module %s: %s", p.module_name, reason)
    return None


def _configure(
    sock: socket.socket, cfg: config.ICMPConfig, family: socket.AddressFamily, raw: bool
) -> None:
    sock.setblocking(False)
    if cfg.source_ip_address is not None:
        sock.bind((str(cfg.source_ip_address), 0))
    if family == socket.AF_INET:
        if cfg.ttl:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, cfg.ttl)
        if cfg.dont_fragment:
            sock.setsockopt(socket.IPPROTO_IP, _IP_MTU_DISCOVER, _IP_PMTUDISC_DO)
        if not raw:  # a raw socket reads the TTL from the IP header
            sock.setsockopt(socket.IPPROTO_IP, _IP_RECVTTL, 1)
    else:
        if cfg.ttl:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, cfg.ttl)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
    if not raw and cfg.source_ip_address is None:
        sock.bind(("0.0.0.0" if family == socket.AF_INET else "::", 0))  # assigns the id


def _echo(family: socket.AddressFamily, ident: int, seq: int, payload: bytes) -> bytes:
    header = struct.pack("!BBHHH", _ECHO[family][0], 0, 0, ident, seq)
    if family == socket.AF_INET6:  # the kernel fills in the ICMPv6 checksum
        return header + payload
    checksum = _checksum(header + payload)
    return struct.pack("!BBHHH", 8, 0, checksum, ident, seq) + payload


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


async def _reply(
    p: context.Probe,
    sock: socket.socket,
    chosen: addresses.Chosen,
    raw: bool,
    ident: int,
    seq: int,
    payload: bytes,
) -> int | None:
    """Wait for the matching echo reply; its hop limit (None if unknown). Other ICMP
    packets (our own request on a raw socket, other probes' replies) are skipped."""
    v4 = chosen.family == socket.AF_INET
    reply_type = _ECHO[chosen.family][1]
    size = 60 + 8 + len(payload)  # the largest IPv4 header, the ICMP header, the payload
    ancillary = socket.CMSG_SPACE(4)
    while True:
        data, cmsgs, _flags, source = await _recvmsg(sock, size, ancillary)
        hop_limit = None
        if raw and v4 and len(data) >= 20:
            header = (data[0] & 0x0F) * 4
            hop_limit, data = data[8], data[header:]
        for level, kind, value in cmsgs:
            if len(value) >= 4 and (level, kind) in (
                (socket.IPPROTO_IP, socket.IP_TTL),
                (socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT),
            ):
                hop_limit = int.from_bytes(value[:4], sys.byteorder)
        if len(data) < 8:
            continue
        kind, code, _sum, got_id, got_seq = struct.unpack("!BBHHH", data[:8])
        if kind != reply_type or code != 0:
            if raw and kind not in (_ECHO[chosen.family][0],):
                p.trace(f"ignoring ICMP type {kind} code {code} from {source[0]}")
            continue
        if source[0] != chosen.address or got_id != ident or got_seq != seq:
            continue
        if data[8:] != payload:
            p.trace(f"ignoring an echo reply from {source[0]} whose payload differs")
            continue
        return hop_limit


async def _sendto(sock: socket.socket, packet: bytes, address: tuple[str, int]) -> None:
    """``sock.sendto`` on the event loop (uvloop has no ``sock_sendto``)."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            sock.sendto(packet, address)
            return
        except BlockingIOError:
            pass
        ready = loop.create_future()
        loop.add_writer(sock.fileno(), _wake, ready)
        try:
            await ready
        finally:
            loop.remove_writer(sock.fileno())


async def _recvmsg(
    sock: socket.socket, size: int, ancillary: int
) -> tuple[bytes, list[tuple[int, int, bytes]], int, tuple[str, int]]:
    """``sock.recvmsg`` on the event loop (asyncio has no ``sock_recvmsg``)."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            data, cmsgs, flags, source = sock.recvmsg(size, ancillary)
            return data, cmsgs, flags, source
        except BlockingIOError:
            pass
        ready = loop.create_future()
        loop.add_reader(sock.fileno(), _wake, ready)
        try:
            await ready
        finally:
            loop.remove_reader(sock.fileno())


def _wake(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)
