"""The ``grpc`` prober: one ``grpc.health.v1.Health/Check`` on a fresh channel.

Success is a ``SERVING`` answer for the module's ``service`` ("" asks about the
server as a whole). Reports blackbox_exporter's names:
``probe_grpc_healthcheck_response{serving_status}`` (one series per status, 1 for the
one received), ``probe_grpc_status_code`` (the gRPC code: 0 OK, 4 DEADLINE_EXCEEDED,
5 NOT_FOUND for a service the server does not know, 14 UNAVAILABLE, ...),
``probe_grpc_duration_seconds{phase}`` (resolve, check), ``probe_grpc_ssl``,
``probe_ip_protocol``, ``probe_ip_addr_hash``, ``probe_dns_lookup_time_seconds`` and,
with ``tls``, ``probe_ssl_earliest_cert_expiry`` and ``probe_tls_version_info``.

The target's name is resolved here (``preferred_ip_protocol``), checked against this
service's own address, and the channel dials that address, with the name as the
``:authority`` and the TLS name to verify. grpcio does not hand a client the peer's
certificate, so with ``tls`` the certificate facts come from a second TLS handshake
(same address, ``tls_config`` and ALPN ``h2``) made after a check that got an answer.
Each probe has its own channel, subchannel pool and connection (nothing is shared with
another probe, no proxy from the environment, no retries), closed when it ends.
"""

from __future__ import annotations

import asyncio
import functools
import os
import pathlib
import socket
import ssl
import time

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from monitor.errors import ProbeError
from monitor.probes import config, context, output, targets, tls

STATUSES = sorted(health_pb2.HealthCheckResponse.ServingStatus.keys())
# channel options that keep each probe to itself: one connection, to the address given
_OPTIONS = (
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.enable_http_proxy", 0),
    ("grpc.enable_retries", 0),
    ("grpc.max_receive_message_length", 64 << 10),
)
# the check's own deadline ends this much before the probe's, so its status is recorded
_MARGIN = 0.02


async def probe(p: context.Probe) -> bool:
    cfg: config.GRPCConfig = p.module.section()
    target = p.target
    out = p.out
    start = time.perf_counter()
    try:
        family, address = await targets.resolve(
            target.host, target.port, cfg.preferred_ip_protocol, cfg.ip_protocol_fallback
        )
    except ProbeError as exc:
        p.trace(str(exc))
        _phase(out, "resolve", time.perf_counter() - start)
        return False
    lookup = time.perf_counter() - start
    _phase(out, "resolve", lookup)
    out.gauge(
        "probe_dns_lookup_time_seconds",
        "Returns the time taken for probe dns lookup in seconds",
        lookup,
    )
    out.gauge(
        "probe_ip_protocol",
        "Specifies whether probe ip protocol is IP4 or IP6",
        6 if family == socket.AF_INET6 else 4,
    )
    out.gauge(
        "probe_ip_addr_hash",
        "Specifies the hash of IP address. It's useful to detect if the IP address changes.",
        targets.ip_hash(address),
    )
    if p.own is not None:
        p.own.refuse(target.raw, address, target.port)

    check_start = time.perf_counter()
    code, status = await _check(p, cfg, family, address)
    _phase(out, "check", time.perf_counter() - check_start)
    for name in STATUSES:
        out.labelled(
            "probe_grpc_healthcheck_response",
            "Response HealthCheck response",
            {"serving_status": name},
            name == status,
        )
    out.gauge("probe_grpc_status_code", "Response gRPC status code", code.value[0])
    answered = code == grpc.StatusCode.OK
    out.gauge(
        "probe_grpc_ssl", "Indicates if SSL was used for the connection", cfg.tls and answered
    )
    if cfg.tls and answered:
        await _certificate(p, cfg, address)
    if not answered:
        return False
    p.trace(f"serving status {status}")
    return status == "SERVING"


async def _check(
    p: context.Probe, cfg: config.GRPCConfig, family: int, address: str
) -> tuple[grpc.StatusCode, str | None]:
    """Health/Check on a channel of its own: (gRPC status code, serving status)."""
    port = p.target.port
    host = p.target.host
    ipv6 = family == socket.AF_INET6
    dial = f"ipv6:[{address}]:{port}" if ipv6 else f"ipv4:{address}:{port}"
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    options = [*_OPTIONS, ("grpc.default_authority", authority)]
    if cfg.tls:
        name = cfg.tls_config.server_name or host
        options.append(("grpc.ssl_target_name_override", name))
        channel = grpc.aio.secure_channel(dial, _credentials(cfg.tls_config), options)
    else:
        channel = grpc.aio.insecure_channel(dial, options)
    p.trace(f"Health/Check service={cfg.service!r} at {dial}" + (" with TLS" if cfg.tls else ""))
    metadata = [
        (key, value.get_secret_value()) for key, values in cfg.metadata.items() for value in values
    ]
    try:
        stub = health_pb2_grpc.HealthStub(channel)
        response = await stub.Check(
            health_pb2.HealthCheckRequest(service=cfg.service),
            timeout=max(0.001, p.remaining() - _MARGIN),
            metadata=metadata or None,
        )
    except grpc.aio.AioRpcError as exc:
        code = exc.code()
        p.trace(f"check failed: {code.name}: {exc.details()}")
        return code, None
    finally:
        await channel.close()
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    return grpc.StatusCode.OK, status


async def _certificate(p: context.Probe, cfg: config.GRPCConfig, address: str) -> None:
    """The server's certificate expiry and TLS version, from a handshake of our own."""
    server_name = cfg.tls_config.server_name or p.target.host
    try:
        async with asyncio.timeout(max(0.001, p.remaining() - _MARGIN)):
            _reader, writer = await asyncio.open_connection(
                address,
                p.target.port,
                ssl=_alpn_context(cfg.tls_config),
                server_hostname=server_name,
            )
    except (OSError, ssl.SSLError, TimeoutError) as exc:
        p.trace(f"reading the certificate failed: {type(exc).__name__}: {exc}")
        return
    try:
        tls.record(p.out, writer.get_extra_info("ssl_object"))
    finally:
        # no TLS close_notify exchange: a gRPC server waits for HTTP/2, not for that
        writer.transport.abort()


def _phase(out: output.Recorder, phase: str, seconds: float) -> None:
    out.labelled(
        "probe_grpc_duration_seconds",
        "Duration of gRPC request by phase",
        {"phase": phase},
        seconds,
    )


@functools.cache
def _credentials(settings: config.TLSConfig) -> grpc.ChannelCredentials:
    """grpcio's credentials for a module's ``tls_config`` (files read once, at first use;
    the service's load already checked they are readable); without ``ca_file``, the
    system's CA bundle."""
    roots = settings.ca_file or _system_roots()
    return grpc.ssl_channel_credentials(
        root_certificates=roots.read_bytes() if roots else None,
        private_key=settings.key_file.read_bytes() if settings.key_file else None,
        certificate_chain=settings.cert_file.read_bytes() if settings.cert_file else None,
    )


def _system_roots() -> pathlib.Path | None:
    """The system's CA bundle, which the http and tcp probers trust too (grpcio would
    otherwise use the roots it ships with)."""
    cafile = ssl.get_default_verify_paths().cafile
    return pathlib.Path(cafile) if cafile and os.path.isfile(cafile) else None


@functools.cache
def _alpn_context(settings: config.TLSConfig) -> ssl.SSLContext:
    ctx = settings.context()
    ctx.set_alpn_protocols(["h2"])
    return ctx
