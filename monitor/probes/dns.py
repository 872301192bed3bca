"""The ``dns`` prober: one query to the target server, checked as blackbox_exporter does.

The target is the server, ``host[:port]`` (port 53 by default); the module's ``dns``
section says what to ask (``query_name``, ``query_type``, ``query_class``), over
``udp`` or ``tcp``. The probe fails on a transport error or timeout, an rcode not in
``valid_rcodes``, or an RR section that fails its ``validate_*_rrs`` checks. Each RR
is matched in blackbox's (miekg/dns) text form, ``name<TAB>ttl<TAB>class<TAB>type<TAB>
data``, so a blackbox.yml's regular expressions keep meaning the same. Reports
``probe_dns_duration_seconds{phase=resolve|connect|request}``, the counts of the
three sections, ``probe_dns_query_succeeded``, ``probe_dns_serial`` for SOA queries,
and the address metrics of :mod:`monitor.probes.addresses`.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from typing import Any

import dns.asyncbackend
import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from monitor.probes import addresses, config, context

DURATION = "probe_dns_duration_seconds"
DURATION_HELP = "Duration of DNS request by phase"


def rr_lines(rrsets: Sequence[dns.rrset.RRset]) -> list[str]:
    """Each RR as miekg/dns writes it (what blackbox's regular expressions see)."""
    lines: list[str] = []
    for rrset in rrsets:
        head = (
            f"{rrset.name.to_text()}\t{rrset.ttl}\t"
            f"{dns.rdataclass.to_text(rrset.rdclass)}\t{dns.rdatatype.to_text(rrset.rdtype)}"
        )
        lines.extend(f"{head}\t{rdata.to_text()}" for rdata in rrset)
    return lines


def invalid_rrs(section: str, rrs: list[str], v: config.RRValidator) -> str | None:
    """Why the RRs of ``section`` fail the checks of ``v``, or None if they pass
    (blackbox's rules, searched anywhere in the RR: a required match fails on an empty
    section)."""
    if not rrs and v.fail_if_not_matches_regexp:
        return f"{section}: fail_if_not_matches_regexp is set but the section is empty"
    if not rrs and v.fail_if_none_matches_regexp:
        return f"{section}: fail_if_none_matches_regexp is set but the section is empty"
    for rr in rrs:
        for pattern in v.fail_if_matches_regexp:
            if pattern.search(rr):
                return f"{section}: {rr!r} matched fail_if_matches_regexp {pattern.pattern!r}"
        for pattern in v.fail_if_not_matches_regexp:
            if not pattern.search(rr):
                return (
                    f"{section}: {rr!r} did not match fail_if_not_matches_regexp "
                    f"{pattern.pattern!r}"
                )
    # blackbox fails on fail_if_all_match_regexp unless every RR matches every pattern
    # (and on fail_if_none_matches_regexp unless some RR matches some pattern): the
    # names read the other way round, but a blackbox.yml must keep its meaning.
    for pattern in v.fail_if_all_match_regexp:
        for rr in rrs:
            if not pattern.search(rr):
                return (
                    f"{section}: {rr!r} did not match fail_if_all_match_regexp "
                    f"{pattern.pattern!r} (blackbox requires every RR to match it)"
                )
    if v.fail_if_none_matches_regexp and not any(
        pattern.search(rr) for rr in rrs for pattern in v.fail_if_none_matches_regexp
    ):
        patterns = ", ".join(repr(pattern.pattern) for pattern in v.fail_if_none_matches_regexp)
        return f"{section}: no RR matched fail_if_none_matches_regexp ({patterns})"
    return None


def _query(cfg: config.DNSConfig) -> dns.message.QueryMessage:
    flags = dns.flags.RD if cfg.recursion_desired else 0
    return dns.message.make_query(cfg.query_name, cfg.query_type, cfg.query_class, flags=int(flags))


async def probe(p: context.Probe) -> bool:
    phases = dict.fromkeys(("resolve", "connect", "request"), 0.0)
    try:
        return await _probe(p, phases)
    finally:  # also when the deadline cancels the probe
        for phase, seconds in phases.items():
            p.out.labelled(DURATION, DURATION_HELP, {"phase": phase}, seconds)


async def _probe(p: context.Probe, phases: dict[str, float]) -> bool:
    cfg: config.DNSConfig = p.module.section()
    p.out.gauge(
        "probe_dns_query_succeeded",
        "Displays whether or not the query was executed successfully",
        0,
    )
    chosen = await addresses.choose(p, cfg.preferred_ip_protocol, cfg.ip_protocol_fallback)
    if chosen is None:
        return False
    phases["resolve"] = chosen.seconds
    port = p.target.port
    if p.own is not None:
        p.own.refuse(p.target.raw, chosen.address, port)
    query = _query(cfg)
    p.trace(
        f"querying {chosen.address} port {port} over {cfg.transport_protocol}: "
        f"{cfg.query_name} {cfg.query_class} {cfg.query_type}"
    )
    response = await _exchange(p, cfg, query, chosen, port, phases)
    if response is None:
        return False
    p.out.gauge(
        "probe_dns_query_succeeded",
        "Displays whether or not the query was executed successfully",
        1,
    )
    answer, authority, additional = (
        rr_lines(response.answer),
        rr_lines(response.authority),
        rr_lines(response.additional),
    )
    p.out.gauge(
        "probe_dns_answer_rrs",
        "Returns number of entries in the answer resource record list",
        len(answer),
    )
    p.out.gauge(
        "probe_dns_authority_rrs",
        "Returns number of entries in the authority resource record list",
        len(authority),
    )
    p.out.gauge(
        "probe_dns_additional_rrs",
        "Returns number of entries in the additional resource record list",
        len(additional),
    )
    if cfg.query_type == "SOA":
        serial = next(
            (
                rdata.serial
                for rrset in response.answer
                for rdata in rrset
                if rrset.rdtype == dns.rdatatype.SOA
            ),
            0,
        )
        p.out.gauge("probe_dns_serial", "Returns the serial number of the zone", serial)
    rcode = dns.rcode.to_text(response.rcode())
    p.trace(
        f"got rcode {rcode} (flags {dns.flags.to_text(response.flags)}) with "
        f"{len(answer)} answer, {len(authority)} authority and {len(additional)} additional RRs"
    )
    for line in (*answer, *authority, *additional):
        p.trace(f"RR {line!r}")
    if rcode not in cfg.valid_rcodes:
        p.trace(f"rcode {rcode} is not in valid_rcodes ({', '.join(cfg.valid_rcodes)})")
        return False
    for section, rrs, checks in (
        ("answer", answer, cfg.validate_answer_rrs),
        ("authority", authority, cfg.validate_authority_rrs),
        ("additional", additional, cfg.validate_additional_rrs),
    ):
        reason = invalid_rrs(section, rrs, checks)
        if reason is not None:
            p.trace(f"validate_{section}_rrs failed: {reason}")
            return False
    return True


async def _exchange(
    p: context.Probe,
    cfg: config.DNSConfig,
    query: dns.message.QueryMessage,
    chosen: addresses.Chosen,
    port: int,
    phases: dict[str, float],
) -> dns.message.Message | None:
    """Send the query and read the answer within the probe's deadline; None on failure
    (the reason in the trace). Writes the connect and request phases."""
    backend = dns.asyncbackend.get_backend("asyncio")
    tcp = cfg.transport_protocol == "tcp"
    source = (str(cfg.source_ip_address), 0) if cfg.source_ip_address else None
    start = time.perf_counter()
    sock: Any = None
    try:
        sock = await backend.make_socket(
            chosen.family,
            socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM,
            0,
            source,
            (chosen.address, port) if tcp else None,
            p.remaining(),
        )
        connected = time.perf_counter()
        phases["connect"] = connected - start
        try:
            if tcp:
                response = await dns.asyncquery.tcp(
                    query, chosen.address, p.remaining(), port, sock=sock
                )
            else:
                response = await dns.asyncquery.udp(
                    query, chosen.address, p.remaining(), port, ignore_unexpected=True, sock=sock
                )
        finally:
            phases["request"] = time.perf_counter() - connected
    except dns.exception.Timeout:
        p.trace(f"timeout: no answer from {chosen.address} port {port} in time")
        return None
    except (OSError, EOFError, dns.exception.DNSException) as exc:
        p.trace(f"query failed: {type(exc).__name__}: {exc}")
        return None
    finally:
        if sock is not None:
            await sock.close()
    return response
