"""The ``http`` prober: one request (plus redirects) on a fresh connection.

Reports blackbox_exporter's names: ``probe_http_status_code``,
``probe_http_duration_seconds{phase}`` (resolve, connect, processing, transfer; aiohttp
gives no hook between TCP connect and the TLS handshake, so ``connect`` includes TLS),
``probe_http_content_length``, ``probe_http_uncompressed_body_length``,
``probe_http_version``, ``probe_http_redirects``, ``probe_http_ssl``,
``probe_failed_due_to_regex``, ``probe_ssl_earliest_cert_expiry`` and
``probe_tls_version_info``. Each redirect is checked against the module's allowlist
before it is followed.

The body is streamed, never read whole: the probe fails as soon as it passes the
module's ``body_size_limit`` (1 MiB unless set), so a probe holds at most that much,
and only when body regular expressions need it (they run on what was read).
"""

from __future__ import annotations

import socket
import ssl
import time
import urllib.parse

import aiohttp

from monitor.errors import ProbeError
from monitor.probes import config, context, guard, output, sessions, targets, tls

USER_AGENT = "conea-monitor-probe/1"
REDIRECTS = (301, 302, 303, 307, 308)
PHASES = ("resolve", "connect", "processing", "transfer")


async def probe(p: context.Probe) -> bool:
    cfg: config.HTTPConfig = p.module.section()
    session = p.clients.http()
    ssl_context = tls.context(cfg.tls_config)
    headers = {"User-Agent": USER_AGENT, **cfg.headers}
    try:
        credentials = cfg.authorization_header()
    except LookupError as exc:
        p.trace(f"no credentials: {exc}")
        return False
    if credentials is not None:
        headers["Authorization"] = credentials
    if p.target.ip is not None and cfg.preferred_ip_protocol is not None:
        literal = socket.AF_INET6 if p.target.ip.version == 6 else socket.AF_INET
        try:  # an IP literal is resolved by nobody; the family rule still holds
            targets.choose(
                [(literal, p.target.host)], cfg.preferred_ip_protocol, cfg.ip_protocol_fallback
            )
        except ProbeError as exc:
            p.trace(str(exc))
            return False
    method, body, url = cfg.method, cfg.body, p.target.url
    phases = dict.fromkeys(PHASES, 0.0)
    redirects = 0
    try:
        while True:
            timings = sessions.Timings(
                own=p.own,
                ip_protocol=cfg.preferred_ip_protocol,
                ip_fallback=cfg.ip_protocol_fallback,
            )
            sessions.CURRENT.set(timings)
            p.trace(f"{method} {url}")
            start = time.perf_counter()
            async with session.request(
                method,
                url,
                headers=headers,
                data=body,
                allow_redirects=False,
                ssl=ssl_context if url.startswith("https:") else False,
                server_hostname=cfg.tls_config.server_name,
            ) as resp:
                headers_end = time.perf_counter()
                length, content, over = await _read_body(p, cfg, resp)
            _add_phases(phases, timings, start, headers_end, time.perf_counter())
            ssl_object, family, address = timings.ssl_object, timings.family, timings.address
            p.trace(f"received HTTP {resp.status}, {length} body bytes")
            if over:
                break
            location = resp.headers.get("Location")
            if not (cfg.follow_redirects and resp.status in REDIRECTS and location):
                break
            if redirects >= cfg.max_redirects:
                p.trace(f"more than {cfg.max_redirects} redirects; giving up")
                _timing_gauges(p.out, phases)
                return False
            url = urllib.parse.urljoin(url, location)
            p.check(targets.parse("http", url))
            if credentials is not None and _origin(url) != _origin(p.target.url):
                headers.pop("Authorization", None)  # credentials stay with their origin
            redirects += 1
            if resp.status == 303 or (resp.status in (301, 302) and method == "POST"):
                method, body = "GET", None
    except guard.OwnAddress:
        raise  # the runner reports it
    except ProbeError as exc:
        p.trace(f"redirect refused: {exc}")
        _timing_gauges(p.out, phases)
        return False
    except (aiohttp.ClientError, OSError, ssl.SSLError, ValueError) as exc:
        p.trace(f"request failed: {type(exc).__name__}: {exc}")
        _timing_gauges(p.out, phases)
        return False

    out = p.out
    _timing_gauges(out, phases)
    out.gauge("probe_http_status_code", "Response HTTP status code", resp.status)
    out.gauge(
        "probe_http_content_length",
        "Length of http content response",
        resp.content_length if resp.content_length is not None else -1,
    )
    out.gauge(
        "probe_http_uncompressed_body_length",
        "Length of uncompressed response body",
        length,
    )
    if resp.version is not None:
        out.gauge(
            "probe_http_version",
            "Returns the version of HTTP of the probe response",
            resp.version.major + resp.version.minor / 10,
        )
    out.gauge("probe_http_redirects", "The number of redirects", redirects)
    is_ssl = url.startswith("https:")
    out.gauge("probe_http_ssl", "Indicates if SSL was used for the final redirect", is_ssl)
    if family is not None:
        out.gauge(
            "probe_ip_protocol",
            "Specifies whether probe ip protocol is IP4 or IP6",
            6 if family == socket.AF_INET6 else 4,
        )
    if address is not None:
        out.gauge(
            "probe_ip_addr_hash",
            "Specifies the hash of IP address. It's useful to detect if the IP address changes.",
            targets.ip_hash(address),
        )
    tls.record(out, ssl_object)
    if over:
        return False
    return _judge(p, cfg, resp, content, is_ssl)


async def _read_body(
    p: context.Probe, cfg: config.HTTPConfig, resp: aiohttp.ClientResponse
) -> tuple[int, bytes, bool]:
    """Stream the body: (bytes read, the body if a body regexp needs it, whether it was
    over ``body_size_limit``). Past the limit it stops, having read one byte more than
    the limit (nothing when Content-Length already says so), and closes the
    connection."""
    limit = cfg.body_size_limit
    declared = resp.content_length
    if declared is not None and declared > limit and resp.method != "HEAD":
        p.trace(
            f"Content-Length {declared} is over body_size_limit ({limit} bytes); "
            "not reading the body"
        )
        resp.close()
        return 0, b"", True
    keep = bool(cfg.fail_if_body_matches_regexp or cfg.fail_if_body_not_matches_regexp)
    parts: list[bytes] = []
    length = 0
    while chunk := await resp.content.read(limit + 1 - length):
        length += len(chunk)
        if length > limit:
            p.trace(f"body is over body_size_limit ({limit} bytes); stopped reading")
            resp.close()
            return length, b"", True
        if keep:
            parts.append(chunk)
    return length, b"".join(parts), False


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, parts.hostname, parts.port


def _add_phases(
    phases: dict[str, float], t: sessions.Timings, start: float, headers: float, end: float
) -> None:
    phases["resolve"] += t.resolve
    if t.connect_end:
        phases["connect"] += t.connect_end - t.connect_start - t.resolve
    phases["processing"] += headers - (t.connect_end or start)
    phases["transfer"] += end - headers


def _timing_gauges(out: output.Recorder, phases: dict[str, float]) -> None:
    out.gauge(
        "probe_dns_lookup_time_seconds",
        "Returns the time taken for probe dns lookup in seconds",
        phases["resolve"],
    )
    for phase in PHASES:
        out.labelled(
            "probe_http_duration_seconds",
            "Duration of http request by phase, summed over all redirects",
            {"phase": phase},
            phases[phase],
        )


def _judge(
    p: context.Probe,
    cfg: config.HTTPConfig,
    resp: aiohttp.ClientResponse,
    content: bytes,
    is_ssl: bool,
) -> bool:
    ok = True
    valid = cfg.valid_status_codes
    if (resp.status not in valid) if valid else not 200 <= resp.status < 300:
        p.trace(f"invalid HTTP response status code {resp.status}")
        ok = False
    version = resp.version
    if version is not None and not cfg.accepts_version(version.major, version.minor):
        p.trace(f"HTTP/{version.major}.{version.minor} is not in valid_http_versions")
        ok = False
    if cfg.fail_if_ssl and is_ssl:
        p.trace("final request was over TLS and fail_if_ssl is set")
        ok = False
    if cfg.fail_if_not_ssl and not is_ssl:
        p.trace("final request was not over TLS and fail_if_not_ssl is set")
        ok = False
    regex_ok = _body_ok(p, cfg, content) and _headers_ok(p, cfg, resp)
    p.out.gauge("probe_failed_due_to_regex", "Indicates if probe failed due to regex", not regex_ok)
    return ok and regex_ok


def _body_ok(p: context.Probe, cfg: config.HTTPConfig, content: bytes) -> bool:
    if not (cfg.fail_if_body_matches_regexp or cfg.fail_if_body_not_matches_regexp):
        return True
    text = content.decode("utf-8", errors="replace")
    for pattern in cfg.fail_if_body_matches_regexp:
        if pattern.search(text):
            p.trace(f"body matched regular expression {pattern.pattern!r}")
            return False
    for pattern in cfg.fail_if_body_not_matches_regexp:
        if not pattern.search(text):
            p.trace(f"body did not match regular expression {pattern.pattern!r}")
            return False
    return True


def _headers_ok(p: context.Probe, cfg: config.HTTPConfig, resp: aiohttp.ClientResponse) -> bool:
    for spec, fail_on_match in (
        *((s, True) for s in cfg.fail_if_header_matches),
        *((s, False) for s in cfg.fail_if_header_not_matches),
    ):
        values = resp.headers.getall(spec.header, [])
        if not values:
            if spec.allow_missing:
                continue
            p.trace(f"missing required header {spec.header!r}")
            return False
        matched = any(spec.regexp.search(v) for v in values)
        if matched == fail_on_match:
            verb = "matched" if matched else "did not match"
            p.trace(f"header {spec.header!r} {verb} {spec.regexp.pattern!r}")
            return False
    return True
