"""The tcp prober: connect, TLS with certificate expiry, and a line conversation."""

from __future__ import annotations

from tests.probes import servers


def test_open_port_succeeds(service: servers.Service, targets: servers.Targets) -> None:
    result = service.probe("tcp_connect", f"127.0.0.1:{targets.http_port}")
    assert result.success
    assert result.value("probe_ip_protocol") == 4
    assert result.value("probe_dns_lookup_time_seconds") >= 0


def test_host_name_is_resolved(service: servers.Service, targets: servers.Targets) -> None:
    result = service.probe("tcp_connect", f"localhost:{targets.http_port}")
    assert result.success


def test_closed_port_fails(service: servers.Service) -> None:
    result = service.probe("tcp_connect", f"127.0.0.1:{servers.services.free_port()}")
    assert not result.success


def test_tls_connect_reports_certificate_expiry(
    service: servers.Service, targets: servers.Targets
) -> None:
    result = service.probe("tls_ca", f"127.0.0.1:{targets.https_port}")
    assert result.success
    assert result.value("probe_ssl_earliest_cert_expiry") == targets.not_after.timestamp()
    assert result.value("probe_tls_version_info", version="TLS 1.3") == 1


def test_tls_connect_with_an_untrusted_certificate_fails(
    service: servers.Service, targets: servers.Targets
) -> None:
    result = service.probe("tls_connect", f"localhost:{targets.https_port}")
    assert not result.success
    assert "probe_ssl_earliest_cert_expiry" not in result.families


def test_query_response_conversation(service: servers.Service, targets: servers.Targets) -> None:
    response = service.get("banner", f"127.0.0.1:{targets.banner_port}", debug="true")
    assert "sending 'PONG token42'" in response.text
    result = service.probe("banner", f"127.0.0.1:{targets.banner_port}")
    assert result.success
    assert result.value("probe_failed_due_to_regex") == 0


def test_query_response_mismatch_fails_due_to_regex(
    service: servers.Service, targets: servers.Targets
) -> None:
    result = service.probe("banner_wrong", f"127.0.0.1:{targets.banner_port}")
    assert not result.success
    assert result.value("probe_failed_due_to_regex") == 1


def test_silent_server_fails_at_the_module_deadline(
    service: servers.Service, targets: servers.Targets
) -> None:
    result = service.probe("banner_silent", f"127.0.0.1:{targets.silent_port}")
    assert not result.success
    assert 0.95 <= result.value("probe_duration_seconds") < 1.5
    assert result.value("probe_failed_due_to_regex") == 0  # a timeout, not a mismatch
