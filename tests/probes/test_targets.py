"""Target parsing and the allowlist (the SSRF guard)."""

from __future__ import annotations

import ipaddress
import re
import socket

import pytest

from monitor.errors import ProbeError
from monitor.probes import config, targets


def allow(**kwargs: object) -> config.Allow:
    return config.Allow.model_validate(kwargs)


@pytest.mark.parametrize(
    ("prober", "raw", "host", "port"),
    [
        ("http", "https://api.conea.io/health", "api.conea.io", 443),
        ("http", "api.conea.io:8080/health", "api.conea.io", 8080),
        ("tcp", "db.conea.io:5432", "db.conea.io", 5432),
        ("tcp", "[::1]:6379", "::1", 6379),
        ("postgres", "db.conea.io", "db.conea.io", 5432),
        ("postgres", "postgresql://db.conea.io:6543/app", "db.conea.io", 6543),
        ("redis", "cache.conea.io", "cache.conea.io", 6379),
    ],
)
def test_parse(prober: str, raw: str, host: str, port: int) -> None:
    target = targets.parse(prober, raw)
    assert (target.host, target.port) == (host, port)


@pytest.mark.parametrize(
    ("prober", "raw", "message"),
    [
        ("tcp", "db.conea.io", "needs a port"),
        ("tcp", "db:99999", "port '99999' is not a number 1-65535"),
        ("tcp", "::1:80", "write IPv6 addresses as [addr]:port"),
        ("http", "ftp://x/", "scheme 'ftp' is not one of http, https"),
        ("postgres", "postgresql://u:pw@db/app", "must not carry credentials"),
        ("http", "http://a b/", "contains white space"),
        ("http", "", "target parameter is missing"),
    ],
)
def test_parse_errors(prober: str, raw: str, message: str) -> None:
    with pytest.raises(ProbeError, match=re.escape(message)):
        targets.parse(prober, raw)


def test_host_patterns_match_names_not_addresses() -> None:
    rules = allow(hosts=["*.conea.io"])
    targets.check(rules, "m", targets.parse("http", "https://API.conea.io./health"))
    for raw in ("https://conea.io.evil.com/", "https://10.0.0.1/", "https://conea.io/"):
        with pytest.raises(ProbeError, match="not allowed for module 'm'"):
            targets.check(rules, "m", targets.parse("http", raw))


def test_cidrs_admit_ip_literals() -> None:
    rules = allow(cidrs=["10.0.0.0/8", "fd00::/8"])
    targets.check(rules, "m", targets.parse("tcp", "10.20.30.40:5432"))
    targets.check(rules, "m", targets.parse("tcp", "[fd00::5]:5432"))
    with pytest.raises(ProbeError, match=r"address '169\.254\.169\.254' matches nothing"):
        targets.check(rules, "m", targets.parse("tcp", "169.254.169.254:80"))
    assert rules.cidrs[0] == ipaddress.ip_network("10.0.0.0/8")


def test_url_patterns_match_the_whole_target() -> None:
    rules = allow(urls=[r"https://status\.example\.com/.*"])
    targets.check(rules, "m", targets.parse("http", "https://status.example.com/ok"))
    with pytest.raises(ProbeError):
        targets.check(rules, "m", targets.parse("http", "https://status.example.com.evil/ok"))


def test_star_admits_anything() -> None:
    rules = allow(hosts=["*"])
    targets.check(rules, "m", targets.parse("tcp", "10.0.0.1:22"))
    targets.check(rules, "m", targets.parse("tcp", "anything.example:22"))


def test_empty_allowlist_refuses_with_a_hint() -> None:
    with pytest.raises(ProbeError, match="module 'm' allows no targets; list them under 'allow'"):
        targets.check(allow(), "m", targets.parse("tcp", "127.0.0.1:22"))


@pytest.mark.parametrize(
    ("raw", "host", "port"),
    [
        ("grpc.conea.io:50051", "grpc.conea.io", 50051),
        ("https://grpc.conea.io:8443", "grpc.conea.io", 8443),
        ("http://grpc.conea.io", "grpc.conea.io", 80),
        ("[::1]:50051", "::1", 50051),
    ],
)
def test_parse_grpc_targets_as_blackbox_writes_them(raw: str, host: str, port: int) -> None:
    parsed = targets.parse("grpc", raw)
    assert (parsed.host, parsed.port) == (host, port)


def test_grpc_target_needs_a_port() -> None:
    with pytest.raises(ProbeError, match=r"needs a port"):
        targets.parse("grpc", "grpc.conea.io")


V4, V6 = (socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")


@pytest.mark.parametrize(
    ("found", "preferred", "fallback", "chosen"),
    [
        ([V4, V6], None, True, V4),  # no preference: the resolver's order
        ([V6, V4], None, True, V6),
        ([V4, V6], "ip6", True, V6),
        ([V6, V4], "ip4", True, V4),
        ([V4], "ip6", True, V4),  # fallback to the other family
        ([V6], "ip4", True, V6),
    ],
)
def test_choose_follows_blackbox_rules(
    found: list[tuple[int, str]], preferred: str | None, fallback: bool, chosen: tuple[int, str]
) -> None:
    assert targets.choose(found, preferred, fallback) == chosen


@pytest.mark.parametrize(("found", "preferred"), [([V4], "ip6"), ([V6], "ip4"), ([], None)])
def test_choose_without_fallback_or_address_fails(
    found: list[tuple[int, str]], preferred: str | None
) -> None:
    with pytest.raises(ProbeError, match="no address to dial"):
        targets.choose(found, preferred, fallback=False)


async def test_resolve_a_name_and_a_literal() -> None:
    assert await targets.resolve("localhost", 80, "ip4", False) == (socket.AF_INET, "127.0.0.1")
    assert await targets.resolve("::1", 80) == (socket.AF_INET6, "::1")
    with pytest.raises(ProbeError, match=r"over ip6 \(ip_protocol_fallback is off\)"):
        await targets.resolve("127.0.0.1", 80, "ip6", False)


def test_ip_hash_is_fnv1a_of_the_address_bytes() -> None:
    # FNV-1a, 32 bits, of b"\x7f\x00\x00\x01" and of ::1's sixteen bytes
    assert targets.ip_hash("127.0.0.1") == 0xDAAF40ED
    assert targets.ip_hash("::1") != targets.ip_hash("127.0.0.1")
    assert targets.ip_hash("10.0.0.1") == targets.ip_hash("10.0.0.1")
