"""The grpc prober through /probe against real grpc.aio health servers in this process."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import pathlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
import pytest
import trustme
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from monitor.probes import grpc as grpc_prober
from tests.probes import servers

NOT_AFTER = datetime.datetime(2032, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
STATUSES = ("NOT_SERVING", "SERVICE_UNKNOWN", "SERVING", "UNKNOWN")


class Servicer(health.aio.HealthServicer):
    """grpcio-health-checking's servicer, which also records each call's metadata and
    never answers a check of the service "hang"."""

    def __init__(self, seen: list[dict[str, str]]) -> None:
        super().__init__()
        self.seen = seen

    async def Check(self, request: Any, context: Any) -> Any:
        call = {key: value for key, value in context.invocation_metadata()}
        self.seen.append({**call, "peer": context.peer()})
        if request.service == "hang":
            await asyncio.Event().wait()
        return await super().Check(request, context)


@dataclass
class GRPCTargets:
    plain_port: int
    tls_port: int
    ca_file: pathlib.Path
    other_ca_file: pathlib.Path
    seen: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture(scope="module")
def grpc_targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GRPCTargets]:
    tmp = tmp_path_factory.mktemp("grpc")
    ca, other = trustme.CA(), trustme.CA()
    leaf = ca.issue_cert("localhost", "127.0.0.1", not_after=NOT_AFTER)
    ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
    other.cert_pem.write_to_path(str(tmp / "other.pem"))
    ports = [servers.services.free_port() for _ in range(2)]
    seen: list[dict[str, str]] = []
    lt = servers.LoopThread()

    async def start() -> grpc.aio.Server:
        servicer = Servicer(seen)
        await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        await servicer.set("up", health_pb2.HealthCheckResponse.SERVING)
        await servicer.set("down", health_pb2.HealthCheckResponse.NOT_SERVING)
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
        server.add_insecure_port(f"127.0.0.1:{ports[0]}")
        key_pair = (leaf.private_key_pem.bytes(), leaf.cert_chain_pems[0].bytes())
        server.add_secure_port(f"127.0.0.1:{ports[1]}", grpc.ssl_server_credentials([key_pair]))
        await server.start()
        return server

    server = lt.run(start())
    try:
        yield GRPCTargets(ports[0], ports[1], tmp / "ca.pem", tmp / "other.pem", seen)
    finally:
        lt.run(server.stop(None))
        lt.close()


def modules_yaml(t: GRPCTargets) -> str:
    return f"""
allow:
  hosts: [localhost]
  cidrs: [127.0.0.0/8]
modules:
  grpc: {{prober: grpc, timeout: 5s}}
  grpc_up: {{prober: grpc, timeout: 5s, grpc: {{service: up}}}}
  grpc_down: {{prober: grpc, timeout: 5s, grpc: {{service: down}}}}
  grpc_unknown: {{prober: grpc, timeout: 5s, grpc: {{service: nope}}}}
  grpc_hang: {{prober: grpc, timeout: 1s, grpc: {{service: hang}}}}
  grpc_ip6_only:
    prober: grpc
    grpc: {{preferred_ip_protocol: ip6, ip_protocol_fallback: false}}
  grpc_metadata:
    prober: grpc
    grpc:
      service: up
      metadata:
        Authorization: ["Bearer t0ken-secret"]
        x-team: [sre]
  grpc_tls:
    prober: grpc
    timeout: 5s
    grpc: {{tls: true, tls_config: {{ca_file: "{t.ca_file}"}}}}
  grpc_tls_wrong_ca:
    prober: grpc
    timeout: 5s
    grpc: {{tls: true, tls_config: {{ca_file: "{t.other_ca_file}"}}}}
  grpc_tls_system_ca:
    prober: grpc
    timeout: 5s
    grpc: {{tls: true}}
  grpc_internal_only:
    prober: grpc
    allow: {{hosts: ["*.internal"]}}
"""


@pytest.fixture(scope="module")
def service(grpc_targets: GRPCTargets) -> Iterator[servers.Service]:
    with servers.service(modules_yaml(grpc_targets)) as running:
        yield running


def statuses(result: servers.Probed) -> dict[str, float]:
    return {
        name: result.value("probe_grpc_healthcheck_response", serving_status=name)
        for name in STATUSES
    }


def test_serving_server_succeeds_with_blackbox_metrics(
    service: servers.Service, grpc_targets: GRPCTargets
) -> None:
    result = service.probe("grpc", f"127.0.0.1:{grpc_targets.plain_port}")
    assert result.success
    assert statuses(result) == {
        "NOT_SERVING": 0,
        "SERVICE_UNKNOWN": 0,
        "SERVING": 1,
        "UNKNOWN": 0,
    }
    assert result.value("probe_grpc_status_code") == 0
    assert result.value("probe_grpc_ssl") == 0
    assert result.value("probe_ip_protocol") == 4
    # FNV-1a of 127.0.0.1's four bytes, as blackbox_exporter reports it
    assert result.value("probe_ip_addr_hash") == 0xDAAF40ED
    check = result.value("probe_grpc_duration_seconds", phase="check")
    assert 0 < check <= result.value("probe_duration_seconds")
    assert result.value("probe_grpc_duration_seconds", phase="resolve") >= 0


def test_named_service_and_host_name(service: servers.Service, grpc_targets: GRPCTargets) -> None:
    result = service.probe("grpc_up", f"localhost:{grpc_targets.plain_port}")
    assert result.success
    assert result.value("probe_grpc_healthcheck_response", serving_status="SERVING") == 1


def test_not_serving_fails(service: servers.Service, grpc_targets: GRPCTargets) -> None:
    result = service.probe("grpc_down", f"127.0.0.1:{grpc_targets.plain_port}")
    assert not result.success
    assert statuses(result)["NOT_SERVING"] == 1 and statuses(result)["SERVING"] == 0
    assert result.value("probe_grpc_status_code") == 0  # the call worked; the answer is no


def test_unknown_service_is_not_found(service: servers.Service, grpc_targets: GRPCTargets) -> None:
    result = service.probe("grpc_unknown", f"127.0.0.1:{grpc_targets.plain_port}")
    assert not result.success
    assert result.value("probe_grpc_status_code") == grpc.StatusCode.NOT_FOUND.value[0] == 5
    assert set(statuses(result).values()) == {0}


def test_unreachable_port_is_unavailable(service: servers.Service) -> None:
    result = service.probe("grpc", f"127.0.0.1:{servers.services.free_port()}")
    assert not result.success
    assert result.value("probe_grpc_status_code") == grpc.StatusCode.UNAVAILABLE.value[0]


def test_server_that_never_answers_fails_at_the_deadline(
    service: servers.Service, grpc_targets: GRPCTargets
) -> None:
    result = service.probe("grpc_hang", f"127.0.0.1:{grpc_targets.plain_port}")
    assert not result.success
    assert result.value("probe_grpc_status_code") == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
    assert result.value("probe_duration_seconds") < 1.5  # the module's 1s, not the server's


def test_tls_with_the_right_ca_reports_the_certificate(
    service: servers.Service, grpc_targets: GRPCTargets
) -> None:
    result = service.probe("grpc_tls", f"localhost:{grpc_targets.tls_port}")
    assert result.success
    assert result.value("probe_grpc_ssl") == 1
    assert result.value("probe_ssl_earliest_cert_expiry") == NOT_AFTER.timestamp()
    assert result.value("probe_tls_version_info", version="TLS 1.3") == 1


def test_tls_with_a_wrong_ca_fails(service: servers.Service, grpc_targets: GRPCTargets) -> None:
    result = service.probe("grpc_tls_wrong_ca", f"localhost:{grpc_targets.tls_port}")
    assert not result.success
    assert result.value("probe_grpc_status_code") == grpc.StatusCode.UNAVAILABLE.value[0]
    assert result.value("probe_grpc_ssl") == 0
    assert "probe_ssl_earliest_cert_expiry" not in result.families


def test_tls_without_ca_file_trusts_the_systems_ca_bundle(
    service: servers.Service, grpc_targets: GRPCTargets, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = f"localhost:{grpc_targets.tls_port}"
    assert not service.probe("grpc_tls_system_ca", target).success  # trustme's CA: not trusted
    monkeypatch.setenv("SSL_CERT_FILE", str(grpc_targets.ca_file))  # the system's bundle now
    _clear_tls_caches()
    try:
        result = service.probe("grpc_tls_system_ca", target)
        assert result.success
        assert result.value("probe_ssl_earliest_cert_expiry") == NOT_AFTER.timestamp()
    finally:
        monkeypatch.undo()
        _clear_tls_caches()


def _clear_tls_caches() -> None:
    grpc_prober._credentials.cache_clear()
    grpc_prober._alpn_context.cache_clear()


def test_plaintext_check_of_a_tls_port_fails(
    service: servers.Service, grpc_targets: GRPCTargets
) -> None:
    result = service.probe("grpc", f"127.0.0.1:{grpc_targets.tls_port}")
    assert not result.success


def test_metadata_is_sent_and_never_shown(
    service: servers.Service, grpc_targets: GRPCTargets
) -> None:
    grpc_targets.seen.clear()
    response = service.get("grpc_metadata", f"127.0.0.1:{grpc_targets.plain_port}", debug="true")
    assert response.status_code == 200
    assert "probe_success 1.0" in response.text
    assert grpc_targets.seen[-1]["authorization"] == "Bearer t0ken-secret"
    assert grpc_targets.seen[-1]["x-team"] == "sre"
    assert "t0ken-secret" not in response.text
    assert "authorization" in response.text  # the module's configuration, value hidden


def test_ip_protocol_without_fallback_fails_on_the_other_family(
    service: servers.Service, grpc_targets: GRPCTargets
) -> None:
    response = service.get("grpc_ip6_only", f"127.0.0.1:{grpc_targets.plain_port}", debug="true")
    assert "probe_success 0.0" in response.text
    assert "no address to dial over ip6 (ip_protocol_fallback is off)" in response.text
    assert grpc_targets.plain_port  # the server was there: the family decided


def test_allowlist_is_checked(service: servers.Service, grpc_targets: GRPCTargets) -> None:
    response = service.get("grpc_internal_only", f"127.0.0.1:{grpc_targets.plain_port}")
    assert response.status_code == 400
    assert "is not allowed for module 'grpc_internal_only'" in response.text


def test_probes_leave_no_channel_or_connection_open(
    service: servers.Service, grpc_targets: GRPCTargets
) -> None:
    target = f"127.0.0.1:{grpc_targets.plain_port}"
    for _ in range(3):  # grpcio's own threads and pipes, made once
        assert service.probe("grpc", target).success
    before = _open_fds()
    grpc_targets.seen.clear()
    for _ in range(40):
        assert service.probe("grpc", target).success
    # each probe's client socket and the server's end of it are closed again
    assert _open_fds() - before < 10
    # and each probe had a connection of its own, as blackbox_exporter's do
    assert len({call["peer"] for call in grpc_targets.seen}) == 40


def _open_fds() -> int:
    with contextlib.suppress(FileNotFoundError):
        return len(os.listdir("/proc/self/fd"))
    pytest.skip("needs /proc")
