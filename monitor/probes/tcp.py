"""The ``tcp`` prober: connect, optionally over TLS, then an optional conversation.

Reports ``probe_ip_protocol``, ``probe_dns_lookup_time_seconds``,
``probe_failed_due_to_regex`` and, over TLS, ``probe_ssl_earliest_cert_expiry`` and
``probe_tls_version_info``, as blackbox_exporter does. ``query_response`` steps wait
for a line matching ``expect``, ``send`` a line (``${1}`` is a group of the last
match) or upgrade the connection with ``starttls``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
import time
from typing import Any

from monitor.errors import ProbeError
from monitor.probes import config, context, targets, tls

REGEX_FAILED = "probe_failed_due_to_regex"
REGEX_HELP = "Indicates if probe failed due to regex"
_GROUP = re.compile(r"\$\{(\d+)\}")


async def resolve(
    p: context.Probe, target: targets.Target, preferred: str | None = None, fallback: bool = True
) -> tuple[str, int] | None:
    """The IP address to dial, and its family (:func:`targets.resolve`); writes
    probe_dns_lookup_time_seconds, probe_ip_protocol and probe_ip_addr_hash."""
    start = time.perf_counter()
    try:
        family, address = await targets.resolve(target.host, target.port, preferred, fallback)
    except ProbeError as exc:
        p.trace(str(exc))
        return None
    p.out.gauge(
        "probe_dns_lookup_time_seconds",
        "Returns the time taken for probe dns lookup in seconds",
        time.perf_counter() - start,
    )
    p.out.gauge(
        "probe_ip_protocol",
        "Specifies whether probe ip protocol is IP4 or IP6",
        6 if family == socket.AF_INET6 else 4,
    )
    p.out.gauge(
        "probe_ip_addr_hash",
        "Specifies the hash of IP address. It's useful to detect if the IP address changes.",
        targets.ip_hash(address),
    )
    return address, family


async def probe(p: context.Probe) -> bool:
    cfg: config.TCPConfig = p.module.section()
    resolved = await resolve(p, p.target, cfg.preferred_ip_protocol, cfg.ip_protocol_fallback)
    if resolved is None:
        return False
    address = resolved[0]
    if p.own is not None:
        p.own.refuse(p.target.raw, address, p.target.port)
    ssl_context = tls.context(cfg.tls_config)
    server_name = cfg.tls_config.server_name or p.target.host
    p.trace(f"connecting to {address}:{p.target.port}" + (" with TLS" if cfg.tls else ""))
    try:
        reader, writer = await asyncio.open_connection(
            address,
            p.target.port,
            ssl=ssl_context if cfg.tls else None,
            server_hostname=server_name if cfg.tls else None,
            local_addr=(str(cfg.source_ip_address), 0) if cfg.source_ip_address else None,
        )
    except (OSError, ssl.SSLError) as exc:
        p.trace(f"connect failed: {type(exc).__name__}: {exc}")
        return False
    try:
        if cfg.tls:
            tls.record(p.out, writer.get_extra_info("ssl_object"))
        return await _converse(p, cfg, reader, writer, ssl_context, server_name)
    except (OSError, ssl.SSLError, asyncio.IncompleteReadError, ValueError) as exc:
        # ValueError: a line longer than the stream's 64 KiB limit
        p.trace(f"conversation failed: {type(exc).__name__}: {exc}")
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


async def _converse(
    p: context.Probe,
    cfg: config.TCPConfig,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    ssl_context: ssl.SSLContext,
    server_name: str,
) -> bool:
    regex_failed = False
    match: Any = None  # the last expect's match (an RE2 match)
    if cfg.query_response:
        p.out.gauge(REGEX_FAILED, REGEX_HELP, 0)
    for step in cfg.query_response:
        if step.expect is not None:
            match = await _expect(p, reader, step.expect)
            if match is None:
                regex_failed = True
                break
            if step.labels:
                p.out.labelled(
                    "probe_expect_info",
                    "Explicit content matched",
                    {label.name: _expand(label.value, match) for label in step.labels},
                    1,
                )
        if step.expect_bytes is not None and not await _expect_bytes(p, reader, step.expect_bytes):
            return False
        if isinstance(step.send, bytes):
            p.trace(f"sending {step.send!r}")
            writer.write(step.send + b"\n")
            await writer.drain()
        elif step.send is not None:
            line = _expand(step.send, match)
            p.trace(f"sending {line!r}")
            writer.write(line.encode() + b"\n")
            await writer.drain()
        if step.starttls:
            p.trace("upgrading the connection to TLS")
            await writer.start_tls(ssl_context, server_hostname=server_name)
            tls.record(p.out, writer.get_extra_info("ssl_object"))
    p.out.gauge(REGEX_FAILED, REGEX_HELP, regex_failed)
    return not regex_failed


async def _expect(p: context.Probe, reader: asyncio.StreamReader, pattern: Any) -> Any:
    """Read lines until one matches ``pattern`` (RE2); its match, or None at EOF."""
    while True:
        raw = await reader.readline()
        if not raw:
            p.trace(f"connection closed before a line matched {pattern.pattern!r}")
            return None
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        match = pattern.search(line)
        p.trace(f"read {line!r}" + (" (matched)" if match else ""))
        if match:
            return match


async def _expect_bytes(p: context.Probe, reader: asyncio.StreamReader, expected: bytes) -> bool:
    """Read as many bytes as ``expected`` has; probe_failed_due_to_bytes says whether
    they differ."""
    try:
        data = await reader.readexactly(len(expected))
    except asyncio.IncompleteReadError as exc:
        p.trace(f"connection closed after {len(exc.partial)} of {len(expected)} expected bytes")
        return False
    p.trace(f"read {data!r}" + (" (matched)" if data == expected else f", expected {expected!r}"))
    p.out.gauge(
        "probe_failed_due_to_bytes", "Indicates if probe failed due to bytes", data != expected
    )
    return data == expected


def _expand(template: str, match: Any) -> str:
    """``${1}`` -> group 1 of the last ``expect`` match (empty without one)."""
    return _GROUP.sub(lambda ref: (match.group(int(ref[1])) or "") if match else "", template)
