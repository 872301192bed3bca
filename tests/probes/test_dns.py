"""The dns prober against a real authoritative server (NSD on 127.0.0.1 and ::1)."""

from __future__ import annotations

import pathlib
import socket
from collections.abc import Iterator

import pytest

from monitor.errors import ConfigError
from monitor.probes import config, targets
from tests.probes import direct, servers
from tests.support import services

ZONE = """\
$ORIGIN example.test.
$TTL 300
@    IN SOA  ns1.example.test. hostmaster.example.test. 2024010101 3600 600 86400 300
     IN NS   ns1.example.test.
     IN NS   ns2.example.test.
     IN MX   10 mail.example.test.
     IN TXT  "v=spf1 -all"
ns1  IN A    127.0.0.1
ns2  IN AAAA ::1
www  IN A    127.0.0.1
www  IN A    127.0.0.2
www  IN AAAA ::1
mail IN A    127.0.0.25
"""


@pytest.fixture(scope="module")
def nsd() -> Iterator[services.DNSServer]:
    with services.dns_server({"example.test": ZONE}) as server:
        yield server


def dns(options: str, target: str, seconds: float = 5.0) -> direct.Ran:
    return direct.run(direct.module(f"{{prober: dns, dns: {options}}}"), target, seconds)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_a_query_counts_each_section(nsd: services.DNSServer, transport: str) -> None:
    ran = dns(
        f"{{query_name: www.example.test, query_type: A, transport_protocol: {transport}}}",
        nsd.target,
    )
    assert ran.success, ran.trace
    assert ran.value("probe_dns_query_succeeded") == 1
    assert ran.value("probe_dns_answer_rrs") == 2
    assert ran.value("probe_dns_authority_rrs") == 2  # the zone's NS records
    assert ran.value("probe_dns_additional_rrs") == 2  # the name servers' addresses
    assert ran.value("probe_ip_protocol") == 4
    assert ran.value("probe_dns_duration_seconds", phase="request") > 0
    assert f"over {transport}" in ran.trace
    assert "RR 'www.example.test.\\t300\\tIN\\tA\\t127.0.0.2'" in ran.trace


def test_mx_over_tcp_to_the_ipv6_address(nsd: services.DNSServer) -> None:
    ran = dns(
        "{query_name: example.test, query_type: MX, transport_protocol: tcp}",
        f"[::1]:{nsd.port}",
    )
    assert ran.success, ran.trace
    assert ran.value("probe_ip_protocol") == 6
    assert ran.value("probe_dns_answer_rrs") == 1
    assert ran.value("probe_dns_additional_rrs") == 3  # mail, ns1, ns2


def test_soa_query_reports_the_serial(nsd: services.DNSServer) -> None:
    ran = dns("{query_name: example.test, query_type: SOA}", nsd.target)
    assert ran.success
    assert ran.value("probe_dns_serial") == 2024010101


def test_txt_and_any_default(nsd: services.DNSServer) -> None:
    txt = dns(
        "{query_name: example.test, query_type: TXT, validate_answer_rrs: "
        "{fail_if_not_matches_regexp: ['IN\\tTXT\\t\"v=spf1 -all\"']}}",
        nsd.target,
    )
    assert txt.success, txt.trace
    assert config.DNSConfig(query_name="x").query_type == "ANY"


def test_nxdomain_fails_unless_listed_in_valid_rcodes(nsd: services.DNSServer) -> None:
    ran = dns("{query_name: nope.example.test, query_type: A}", nsd.target)
    assert not ran.success
    assert ran.value("probe_dns_query_succeeded") == 1  # an answer came: the rcode is wrong
    assert "rcode NXDOMAIN is not in valid_rcodes (NOERROR)" in ran.trace
    ran = dns(
        "{query_name: nope.example.test, query_type: A, valid_rcodes: [NXDOMAIN]}", nsd.target
    )
    assert ran.success


# (section, option, pattern, passes, reason in the trace when it fails)
VALIDATIONS = [
    (
        "answer",
        "fail_if_matches_regexp",
        "127\\.0\\.0\\.2",
        False,
        "matched fail_if_matches_regexp '127\\\\.0\\\\.0\\\\.2'",
    ),
    ("answer", "fail_if_matches_regexp", "10\\.0\\.0\\.1", True, ""),
    (
        "answer",
        "fail_if_not_matches_regexp",
        "127\\.0\\.0\\.1$",
        False,
        "did not match fail_if_not_matches_regexp",
    ),
    (
        "answer",
        "fail_if_not_matches_regexp",
        "^www\\.example\\.test\\.\\t300\\tIN\\tA\\t",
        True,
        "",
    ),
    # blackbox's meaning: fails unless every RR matches
    (
        "answer",
        "fail_if_all_match_regexp",
        "127\\.0\\.0\\.1$",
        False,
        "did not match fail_if_all_match_regexp",
    ),
    ("answer", "fail_if_all_match_regexp", "IN\\tA\\t127\\.", True, ""),
    # ... and fails unless some RR matches
    (
        "answer",
        "fail_if_none_matches_regexp",
        "127\\.0\\.0\\.9",
        False,
        "no RR matched fail_if_none_matches_regexp",
    ),
    ("answer", "fail_if_none_matches_regexp", "127\\.0\\.0\\.2", True, ""),
    ("authority", "fail_if_matches_regexp", "ns2\\.example", False, "authority: "),
    ("authority", "fail_if_not_matches_regexp", "\\tNS\\tns[12]\\.example\\.test\\.$", True, ""),
    ("authority", "fail_if_all_match_regexp", "ns1", False, "authority: "),
    ("authority", "fail_if_none_matches_regexp", "ns2", True, ""),
    ("additional", "fail_if_matches_regexp", "\\tAAAA\\t::1$", False, "additional: "),
    ("additional", "fail_if_not_matches_regexp", "\\tA\\t", False, "additional: "),
    ("additional", "fail_if_all_match_regexp", "^ns[12]\\.example\\.test\\.", True, ""),
    ("additional", "fail_if_none_matches_regexp", "mail", False, "additional: "),
]


@pytest.mark.parametrize(("section", "option", "pattern", "passes", "reason"), VALIDATIONS)
def test_validate_rrs(
    nsd: services.DNSServer, section: str, option: str, pattern: str, passes: bool, reason: str
) -> None:
    ran = dns(
        f"{{query_name: www.example.test, query_type: A, "
        f"validate_{section}_rrs: {{{option}: ['{pattern}']}}}}",
        nsd.target,
    )
    assert ran.success is passes, ran.trace
    if not passes:
        assert f"validate_{section}_rrs failed: " in ran.trace
        assert reason in ran.trace


@pytest.mark.parametrize("option", ["fail_if_not_matches_regexp", "fail_if_none_matches_regexp"])
def test_a_required_match_fails_on_an_empty_section(nsd: services.DNSServer, option: str) -> None:
    ran = dns(
        f"{{query_name: www.example.test, query_type: MX, validate_answer_rrs: {{{option}: [.]}}}}",
        nsd.target,
    )
    assert not ran.success
    assert f"answer: {option} is set but the section is empty" in ran.trace


def test_a_server_that_never_answers_times_out() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        ran = dns("{query_name: www.example.test}", f"127.0.0.1:{port}", seconds=0.3)
    assert not ran.success
    assert ran.value("probe_dns_query_succeeded") == 0
    assert "timeout: no answer from 127.0.0.1" in ran.trace


def test_an_address_of_the_other_family_without_fallback_fails(nsd: services.DNSServer) -> None:
    ran = dns("{query_name: example.test, ip_protocol_fallback: false}", nsd.target)
    assert not ran.success
    assert (
        "address 127.0.0.1 is ip4 but preferred_ip_protocol is ip6 and "
        "ip_protocol_fallback is false" in ran.trace
    )


def test_a_host_name_target_is_resolved(nsd: services.DNSServer) -> None:
    ran = dns(
        "{query_name: www.example.test, query_type: A, preferred_ip_protocol: ip4}",
        f"localhost:{nsd.port}",
    )
    assert ran.success, ran.trace
    assert "resolved 'localhost' to 127.0.0.1" in ran.trace


MODULES = """
allow:
  cidrs: [127.0.0.0/8]
modules:
  dns_a:
    prober: dns
    timeout: 5s
    dns:
      query_name: www.example.test
      query_type: A
      preferred_ip_protocol: ip4
      validate_answer_rrs:
        fail_if_not_matches_regexp: ["www.example.test.\\t300\\tIN\\tA\\t127.0.0.[12]"]
"""


def test_through_probe_end_to_end(nsd: services.DNSServer) -> None:
    with servers.service(MODULES) as service:
        result = service.probe("dns_a", nsd.target)
        assert result.success, result.text
        assert result.value("probe_dns_answer_rrs") == 2
        assert result.value("probe_dns_duration_seconds", phase="connect") >= 0
        refused = service.get("dns_a", "10.0.0.53")
        assert refused.status_code == 400
        assert refused.text == (
            "target '10.0.0.53' is not allowed for module 'dns_a': address '10.0.0.53' "
            "matches nothing in allow.cidrs or allow.urls\n"
        )
        default_port = service.get("dns_a", "127.0.0.1", debug="true")
        assert "querying 127.0.0.1 port 53 over udp" in default_port.text


def error(text: str) -> str:
    with pytest.raises(ConfigError) as exc:
        config.parse(text, "probes.yml")
    return str(exc.value)


def test_a_blackbox_dns_module_with_every_option_loads() -> None:
    module = config.parse(
        """
modules:
  dns_udp_example:
    prober: dns
    timeout: 5s
    dns:
      query_name: "www.prometheus.io"
      query_type: "A"
      query_class: "IN"
      transport_protocol: tcp
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
      source_ip_address: "127.0.0.1"
      recursion_desired: false
      dns_over_tls: false
      valid_rcodes: [NOERROR, SERVFAIL]
      validate_answer_rrs:
        fail_if_matches_regexp: [".*127.0.0.1"]
        fail_if_all_match_regexp: [".*127.0.0.1"]
        fail_if_not_matches_regexp: ["www.prometheus.io.\\t300\\tIN\\tA\\t127.0.0.1"]
        fail_if_none_matches_regexp: ["127.0.0.1"]
      validate_authority_rrs:
        fail_if_matches_regexp: [".*127.0.0.1"]
      validate_additional_rrs:
        fail_if_matches_regexp: [".*127.0.0.1"]
""",
        "probes.yml",
    ).modules["dns_udp_example"]
    cfg = module.section()
    assert (cfg.query_type, cfg.transport_protocol, cfg.valid_rcodes) == (
        "A",
        "tcp",
        ["NOERROR", "SERVFAIL"],
    )
    assert not cfg.recursion_desired and not cfg.ip_protocol_fallback
    assert cfg.validate_answer_rrs.fail_if_not_matches_regexp[0].pattern == (
        "www.prometheus.io.\t300\tIN\tA\t127.0.0.1"
    )


def test_recursion_desired_sets_the_rd_flag(nsd: services.DNSServer) -> None:
    # an authoritative server answers either way and copies RD into its answer
    wanted = dns("{query_name: www.example.test, query_type: A}", nsd.target)
    assert "flags QR AA RD" in wanted.trace
    unwanted = dns(
        "{query_name: www.example.test, query_type: A, recursion_desired: false}", nsd.target
    )
    assert unwanted.success
    assert "flags QR AA)" in unwanted.trace


@pytest.mark.parametrize(
    ("dns_section", "message"),
    [
        (
            "{query_name: a.test, dns_over_tls: true}",
            "probes.yml:3:59: modules.m.dns.dns_over_tls: dns_over_tls is not supported "
            "by conea-monitor",
        ),
        (
            "{query_name: a.test, tls_config: {insecure_skip_verify: true}}",
            "probes.yml:3:57: modules.m.dns.tls_config: tls_config is not supported by "
            "conea-monitor (it applies to dns_over_tls only)",
        ),
        ("{query_type: A}", "probes.yml:3:24: modules.m.dns.query_name: Field required"),
        (
            "{query_name: a.test, query_type: AAAAA}",
            "probes.yml:3:57: modules.m.dns.query_type: unknown DNS query_type 'AAAAA'",
        ),
        (
            "{query_name: a.test, query_class: INET}",
            "probes.yml:3:58: modules.m.dns.query_class: unknown DNS query_class 'INET'",
        ),
        (
            "{query_name: a.test, valid_rcodes: [NOERR]}",
            "probes.yml:3:59: modules.m.dns.valid_rcodes: unknown DNS rcode 'NOERR'",
        ),
        (
            "{query_name: a.test, transport_protocol: quic}",
            "probes.yml:3:65: modules.m.dns.transport_protocol: Input should be 'udp' or 'tcp'",
        ),
        (
            "{query_name: a.test, validate_answer_rrs: {fail_if_match_regexp: [x]}}",
            "probes.yml:3:67: modules.m.dns.validate_answer_rrs.fail_if_match_regexp: unknown key",
        ),
    ],
)
def test_bad_dns_sections_name_the_key(dns_section: str, message: str) -> None:
    assert error(f"modules:\n  m:\n    {{prober: dns, dns: {dns_section}}}\n") == message


def test_a_dns_module_needs_its_section() -> None:
    assert error("modules:\n  m: {prober: dns}\n").endswith(
        "prober 'dns' needs a 'dns' section with query_name"
    )


def docs_examples(heading: str) -> list[str]:
    """The ```yaml blocks of docs/probes.md under ``heading`` (up to the next heading)."""
    text = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "probes.md").read_text()
    section = text.split(f"\n{heading}\n", 1)[1].split("\n#", 1)[0]
    return [block.split("```", 1)[0] for block in section.split("```yaml\n")[1:]]


@pytest.mark.parametrize("heading", ["### `dns` prober", "### `icmp` prober"])
def test_the_docs_examples_load(heading: str) -> None:
    (example,) = docs_examples(heading)
    probes = config.parse(example, "docs/probes.md")
    assert {module.prober for module in probes.modules.values()} == {heading.split("`")[1]}


def test_a_bare_ipv6_address_is_the_server_on_port_53() -> None:
    parsed = targets.parse("dns", "::1")
    assert (parsed.host, parsed.port) == ("::1", 53)
    assert targets.parse("dns", "[::1]:5353").port == 5353
