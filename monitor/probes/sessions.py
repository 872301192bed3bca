"""Client sessions shared by the probes of one service, and what they measure.

The HTTP session never reuses a connection (``force_close``): every probe opens its
own, as blackbox_exporter does, so a probe measures a real connect. Phase times come
from a connector and a resolver that write into the :class:`Timings` of the request
running in the current task (:data:`CURRENT`), not from aiohttp's trace hooks, which
cost about a tenth of a probe's CPU. The connector also refuses a connection that
reached this service itself (:mod:`monitor.probes.guard`), before a byte of the
request is sent.
"""

from __future__ import annotations

import asyncio
import contextvars
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import aiohttp.abc
import aiohttp.client_proto
import aiohttp.connector

from monitor.errors import ProbeError
from monitor.probes import guard, targets


@dataclass
class Timings:
    """One request's phase marks (``time.perf_counter()``) and connection facts."""

    resolve: float = 0.0  # seconds spent resolving the host name
    connect_start: float = 0.0
    connect_end: float = 0.0
    ssl_object: ssl.SSLObject | None = None
    family: int | None = None
    address: str | None = None  # the address connected to
    own: guard.Own | None = None  # this service, which the request must not reach
    ip_protocol: str | None = None  # the module's preferred_ip_protocol
    ip_fallback: bool = True  # and its ip_protocol_fallback


CURRENT: contextvars.ContextVar[Timings] = contextvars.ContextVar("CURRENT")


class _Resolver(aiohttp.abc.AbstractResolver):
    """aiohttp's threaded resolver, timed (IP-literal targets never get here)."""

    def __init__(self) -> None:
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        start = time.perf_counter()
        timings = CURRENT.get(None)
        try:
            results = await self._inner.resolve(host, port, family)
        finally:
            if timings is not None:
                timings.resolve += time.perf_counter() - start
        if timings is None or timings.ip_protocol is None:
            return results
        try:  # one address, of the module's preferred family (blackbox's rule)
            _, address = targets.choose(
                ((r["family"], r["host"]) for r in results),
                timings.ip_protocol,
                timings.ip_fallback,
            )
        except ProbeError as exc:
            raise OSError(f"{host}: {exc}") from None
        return [r for r in results if r["host"] == address][:1]

    async def close(self) -> None:
        await self._inner.close()


class _Connector(aiohttp.TCPConnector):
    """Times each new connection and keeps its TLS object and address family for the
    request that asked for it (aiohttp may release a connection before the caller
    sees the response)."""

    async def connect(
        self,
        req: aiohttp.ClientRequest,
        traces: list[Any],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 - the overridden signature
    ) -> aiohttp.connector.Connection:
        timings = CURRENT.get(None)
        if timings is not None:
            timings.connect_start = time.perf_counter()
        conn = await super().connect(req, traces, timeout)
        if timings is not None:
            timings.connect_end = time.perf_counter()
            transport = conn.transport
            if transport is not None:
                timings.ssl_object = transport.get_extra_info("ssl_object")
                peer = transport.get_extra_info("peername")
                timings.family = socket.AF_INET6 if peer and len(peer) == 4 else socket.AF_INET
                timings.address = str(peer[0]) if peer else None
                if timings.own is not None and peer:
                    try:
                        timings.own.refuse(str(req.url), str(peer[0]), int(peer[1]))
                    except guard.OwnAddress:
                        conn.close()
                        raise
        return conn

    async def _wrap_create_connection(
        self,
        *args: Any,
        addr_infos: list[Any],
        req: aiohttp.ClientRequest,
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 - the overridden signature
        client_error: type[Exception] = aiohttp.ClientConnectorError,
        **kwargs: Any,
    ) -> tuple[asyncio.Transport, aiohttp.client_proto.ResponseHandler]:
        """One address and no connect timeout of aiohttp's own (the probe's deadline
        bounds it): the event loop connects directly, as aiohttp does once its
        happy-eyeballs helper has made the socket, for less CPU. Anything
        else (several addresses, a scoped IPv6 address) goes aiohttp's way."""
        address: tuple[Any, ...] = addr_infos[0][4] if len(addr_infos) == 1 else ()
        if timeout.sock_connect is not None or not (
            len(address) == 2 or (len(address) == 4 and not address[2] and not address[3])
        ):
            return await super()._wrap_create_connection(
                *args,
                addr_infos=addr_infos,
                req=req,
                timeout=timeout,
                client_error=client_error,
                **kwargs,
            )
        family, _, proto, _, _ = addr_infos[0]
        loop: Any = self._loop
        try:
            connected: tuple[asyncio.Transport, aiohttp.client_proto.ResponseHandler]
            connected = await loop.create_connection(
                *args, host=address[0], port=address[1], family=family, proto=proto, **kwargs
            )
        except ssl.CertificateError as exc:
            raise aiohttp.ClientConnectorCertificateError(req.connection_key, exc) from exc
        except ssl.SSLError as exc:
            raise aiohttp.ClientConnectorSSLError(req.connection_key, exc) from exc
        except OSError as exc:
            if exc.errno is None and isinstance(exc, TimeoutError):
                raise
            raise client_error(req.connection_key, exc) from exc
        return connected


class Clients:
    """The probes' client sessions, created on first use, closed by ``aclose``."""

    def __init__(self) -> None:
        self._http: aiohttp.ClientSession | None = None

    def http(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            connector = _Connector(
                force_close=True, limit=0, use_dns_cache=False, resolver=_Resolver()
            )
            self._http = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=None),
                skip_auto_headers=("User-Agent",),
            )
        return self._http

    async def aclose(self) -> None:
        if self._http is not None and not self._http.closed:
            await self._http.close()
        self._http = None
