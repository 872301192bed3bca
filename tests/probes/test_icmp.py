"""The icmp prober on the loopback: raw sockets (the tests run as root), unprivileged
ping sockets (in a network namespace whose ping_group_range admits us), and the reason
given when the kernel allows neither."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys

import pytest

from monitor.errors import ConfigError
from monitor.probes import config, icmp, targets
from tests.probes import direct, servers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOBODY = (1, 0)  # the kernel's default ping_group_range: no group
GROUPS = frozenset({os.getegid()})
RAW_ONLY = icmp.Permissions(NOBODY, GROUPS, net_raw=True)
NEITHER = icmp.Permissions(NOBODY, GROUPS, net_raw=False)
PING_ONLY = icmp.Permissions((0, 2147483647), GROUPS, net_raw=False)


def ping(options: str, target: str, perms: icmp.Permissions, seconds: float = 5.0) -> direct.Ran:
    mod = direct.module(f"{{prober: icmp, icmp: {options}}}")

    async def prober(p: icmp.context.Probe) -> bool:
        return await icmp.ping(p, perms)

    return direct.run(mod, target, seconds, prober)


@pytest.fixture(scope="module")
def raw_allowed() -> None:
    if not icmp.permissions().net_raw:
        pytest.skip("the raw-socket tests need CAP_NET_RAW (they run as root in CI)")


@pytest.mark.parametrize(("target", "version"), [("127.0.0.1", 4), ("::1", 6), ("[::1]", 6)])
def test_raw_socket_echo(raw_allowed: None, target: str, version: int) -> None:
    ran = ping("{}", target, RAW_ONLY)
    assert ran.success, ran.trace
    assert "over a raw socket" in ran.trace
    assert ran.value("probe_ip_protocol") == version
    assert ran.value("probe_icmp_reply_hop_limit") == 64
    assert ran.value("probe_icmp_duration_seconds", phase="rtt") > 0
    assert ran.value("probe_icmp_duration_seconds", phase="setup") > 0
    assert ran.value("probe_ip_addr_hash") == targets.ip_hash(target.strip("[]"))


def test_options_payload_ttl_dont_fragment_and_source(raw_allowed: None) -> None:
    ran = ping(
        "{preferred_ip_protocol: ip4, payload_size: 1400, ttl: 3, dont_fragment: true, "
        "source_ip_address: 127.0.0.1}",
        "localhost",
        RAW_ONLY,
    )
    assert ran.success, ran.trace
    assert ran.value("probe_ip_protocol") == 4


def test_neither_ping_sockets_nor_raw_sockets_is_a_clear_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, "monitor.probes.icmp"):
        ran = ping("{}", "127.0.0.1", NEITHER)
    reason = (
        f"ICMP needs net.ipv4.ping_group_range to include gid {os.getegid()} or CAP_NET_RAW "
        "(the range is '1 0' and the process lacks CAP_NET_RAW); see docs/helm.md"
    )
    assert not ran.success
    assert reason in ran.trace
    assert reason in caplog.text
    assert ran.value("probe_icmp_duration_seconds", phase="rtt") == 0


def test_a_range_the_kernel_does_not_apply_falls_back_to_the_reason() -> None:
    # told ping sockets are allowed, but this namespace's range is "1 0": the kernel
    # refuses the socket and the probe says why
    if icmp.permissions().ping_sockets:
        pytest.skip("this host's ping_group_range admits the tests' group")
    ran = ping("{}", "127.0.0.1", PING_ONLY)
    assert not ran.success
    assert "opening a ping socket failed: [Errno 13] Permission denied" in ran.trace
    assert "ICMP needs net.ipv4.ping_group_range" in ran.trace


def test_permissions_are_read_from_proc(tmp_path: os.PathLike[str]) -> None:
    proc = icmp.Path(tmp_path)
    (proc / "sys/net/ipv4").mkdir(parents=True)
    (proc / "self").mkdir()
    (proc / "sys/net/ipv4/ping_group_range").write_text("0\t2147483647\n")
    (proc / "self/status").write_text("Name:\tx\nCapEff:\t0000000000002000\n")
    perms = icmp.permissions(proc)
    assert perms.ping_group_range == (0, 2147483647) and perms.ping_sockets and perms.net_raw
    (proc / "sys/net/ipv4/ping_group_range").write_text("1 0\n")
    (proc / "self/status").write_text("CapEff:\t0000000000000000\n")
    perms = icmp.permissions(proc)
    assert not perms.ping_sockets and not perms.net_raw


IN_NAMESPACE = """
import json, sys
from tests.probes import direct
from monitor.probes import icmp
perms = icmp.permissions()
perms = icmp.Permissions(perms.ping_group_range, perms.groups, net_raw=False)
out = {}
for target, seconds in json.loads(sys.argv[1]):
    async def prober(p):
        return await icmp.ping(p, perms)
    ran = direct.run(direct.module("{prober: icmp}"), target, seconds, prober)
    out[target] = [ran.success, ran.trace]
print(json.dumps(out))
"""


def in_namespace(probes: list[tuple[str, float]]) -> dict[str, tuple[bool, str]]:
    """Run icmp probes in a fresh network namespace (``unshare -n``) with its own
    ping_group_range admitting every group and no raw sockets: only the loopback (which
    also swallows 192.0.2.0/24: not a local address), and no route anywhere else."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("unshare (util-linux) and ip (iproute2) are needed")
    script = (
        "ip link set lo up && "
        "ip route add 192.0.2.0/24 dev lo && "
        "sysctl -qw net.ipv4.ping_group_range='0 2147483647' && "
        f'exec "{sys.executable}" -c "$0" "$1"'
    )
    result = subprocess.run(
        ["unshare", "--net", "sh", "-c", script, IN_NAMESPACE, json.dumps(probes)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT},
        timeout=60,
    )
    if result.returncode != 0 and "unshare failed" in result.stderr:
        pytest.skip(f"cannot make a network namespace here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    return {
        target: (success, trace) for target, (success, trace) in json.loads(result.stdout).items()
    }


@pytest.fixture(scope="module")
def namespaced() -> dict[str, tuple[bool, str]]:
    return in_namespace(
        [("127.0.0.1", 5.0), ("::1", 5.0), ("192.0.2.1", 0.3), ("198.51.100.1", 5.0)]
    )


@pytest.mark.parametrize("target", ["127.0.0.1", "::1"])
def test_unprivileged_ping_sockets_in_a_namespace_that_allows_them(
    namespaced: dict[str, tuple[bool, str]], target: str
) -> None:
    success, trace = namespaced[target]
    assert success, trace
    assert f"to {target} over an unprivileged ping socket" in trace
    assert "hop limit 64" in trace


def test_an_address_that_never_answers_times_out(namespaced: dict[str, tuple[bool, str]]) -> None:
    success, trace = namespaced["192.0.2.1"]
    assert not success
    assert "sending echo request" in trace
    assert "timeout: no echo reply from 192.0.2.1 in time" in trace


def test_an_address_without_a_route_is_unreachable(
    namespaced: dict[str, tuple[bool, str]],
) -> None:
    success, trace = namespaced["198.51.100.1"]
    assert not success
    assert "echo failed: [Errno 101] Network is unreachable" in trace


ICMP_MODULES = """
allow:
  cidrs: [127.0.0.0/8, "::1/128"]
modules:
  icmp:
    prober: icmp
    timeout: 5s
"""


def test_through_probe_end_to_end(raw_allowed: None) -> None:
    with servers.service(ICMP_MODULES) as service:
        result = service.probe("icmp", "::1")
        assert result.success, result.text
        assert result.value("probe_ip_protocol") == 6
        assert result.value("probe_icmp_duration_seconds", phase="rtt") > 0
        refused = service.get("icmp", "10.1.2.3")
        assert refused.status_code == 400
        assert refused.text == (
            "target '10.1.2.3' is not allowed for module 'icmp': address '10.1.2.3' "
            "matches nothing in allow.cidrs or allow.urls\n"
        )
        with_port = service.get("icmp", "127.0.0.1:80")
        assert with_port.status_code == 400
        assert with_port.text == (
            "target '127.0.0.1:80': an icmp target is a host name or an IP address, no port\n"
        )


def test_a_blackbox_icmp_module_with_every_option_loads() -> None:
    cfg = (
        config.parse(
            "modules:\n  icmp_example:\n    prober: icmp\n    timeout: 5s\n    icmp:\n"
            "      preferred_ip_protocol: ip4\n      ip_protocol_fallback: false\n"
            "      source_ip_address: 127.0.0.1\n      payload_size: 64\n"
            "      dont_fragment: true\n      ttl: 10\n",
            "probes.yml",
        )
        .modules["icmp_example"]
        .section()
    )
    assert (cfg.payload_size, cfg.ttl, cfg.dont_fragment) == (64, 10, True)
    assert config.ICMPConfig().preferred_ip_protocol == "ip6"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            "{dont_fragment: true}",
            "probes.yml:3:26: modules.m.icmp: dont_fragment applies to ip4 only: "
            "set preferred_ip_protocol: ip4",
        ),
        (
            "{ttl: 256}",
            "probes.yml:3:32: modules.m.icmp.ttl: Input should be less than or equal to 255",
        ),
        (
            "{payload_size: -1}",
            "probes.yml:3:41: modules.m.icmp.payload_size: Input should be greater than or "
            "equal to 0",
        ),
        ("{ip_protocol: ip4}", "probes.yml:3:27: modules.m.icmp.ip_protocol: unknown key"),
    ],
)
def test_bad_icmp_sections_name_the_key(section: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        config.parse(f"modules:\n  m:\n    {{prober: icmp, icmp: {section}}}\n", "probes.yml")
    assert str(exc.value) == message
