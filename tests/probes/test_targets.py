"""Target parsing and the allowlist (the SSRF guard)."""

from __future__ import annotations

import ipaddress
import re

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
