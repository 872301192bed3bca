"""The http prober through a real /probe endpoint against real local servers."""

from __future__ import annotations

import time

from tests.probes import servers


def test_healthy_route_succeeds_with_blackbox_metrics(
    service: servers.Service, targets: servers.Targets
) -> None:
    before = service.counted("http_2xx", "success")
    result = service.probe("http_2xx", f"{targets.http}/ok")
    assert result.success
    assert result.value("probe_http_status_code") == 200
    assert result.value("probe_http_ssl") == 0
    assert result.value("probe_http_redirects") == 0
    assert result.value("probe_http_uncompressed_body_length") == len("status: healthy\n")
    assert result.value("probe_http_version") == 1.1
    assert result.value("probe_ip_protocol") == 4
    assert result.value("probe_failed_due_to_regex") == 0
    phases = {
        phase: result.value("probe_http_duration_seconds", phase=phase)
        for phase in ("resolve", "connect", "processing", "transfer")
    }
    assert all(value >= 0 for value in phases.values())
    assert phases["connect"] > 0 and phases["processing"] > 0
    assert sum(phases.values()) <= result.value("probe_duration_seconds")
    assert service.counted("http_2xx", "success") == before + 1


def test_failing_route_reports_status_and_fails(
    service: servers.Service, targets: servers.Targets
) -> None:
    before = service.counted("http_2xx", "failure")
    result = service.probe("http_2xx", f"{targets.http}/fail")
    assert not result.success
    assert result.value("probe_http_status_code") == 500
    assert service.counted("http_2xx", "failure") == before + 1


def test_target_without_scheme_is_http(service: servers.Service, targets: servers.Targets) -> None:
    result = service.probe("http_2xx", f"127.0.0.1:{targets.http_port}/ok")
    assert result.success


def test_slow_route_fails_at_the_scrape_deadline(
    service: servers.Service, targets: servers.Targets
) -> None:
    started = time.monotonic()
    result = service.probe("http_2xx", f"{targets.http}/slow", timeout=1.5)
    elapsed = time.monotonic() - started
    assert not result.success
    # 1.5s scrape timeout minus the 0.5s offset: the probe gives up after about 1s.
    assert 0.9 <= result.value("probe_duration_seconds") < 1.4
    assert elapsed < targets.slow_seconds


def test_module_timeout_caps_the_scrape_timeout(
    service: servers.Service, targets: servers.Targets
) -> None:
    # http_2xx has timeout: 5s; the scrape allows 30s; the route needs 5s.
    result = service.probe("http_2xx", f"{targets.http}/slow", timeout=30)
    assert not result.success
    assert 4.9 <= result.value("probe_duration_seconds") < 5.5


def test_post_module_sends_method_and_body(
    service: servers.Service, targets: servers.Targets
) -> None:
    response = service.get("http_post_2xx", f"{targets.http}/echo", debug="true")
    assert response.status_code == 200
    assert "POST http://127.0.0.1" in response.text
    assert "probe_success 1.0" in response.text


def test_body_and_header_checks(service: servers.Service, targets: servers.Targets) -> None:
    good = service.probe("http_checks", f"{targets.http}/ok")
    assert good.success and good.value("probe_failed_due_to_regex") == 0
    # /echo answers 200 without the body text or the header: the checks fail it.
    bad = service.probe("http_checks", f"{targets.http}/echo")
    assert not bad.success
    assert bad.value("probe_http_status_code") == 200
    assert bad.value("probe_failed_due_to_regex") == 1


def test_redirects_are_followed_and_counted(
    service: servers.Service, targets: servers.Targets
) -> None:
    followed = service.probe("http_2xx", f"{targets.http}/redirect")
    assert followed.success
    assert followed.value("probe_http_redirects") == 1
    assert followed.value("probe_http_status_code") == 200
    kept = service.probe("http_no_redirect", f"{targets.http}/redirect")
    assert kept.success and kept.value("probe_http_status_code") == 302


def test_redirect_to_a_disallowed_address_is_not_followed(
    service: servers.Service, targets: servers.Targets
) -> None:
    response = service.get("http_2xx", f"{targets.http}/redirect-out", debug="true")
    assert response.status_code == 200
    assert "redirect refused" in response.text
    assert "'169.254.169.254' matches nothing in allow.cidrs" in response.text
    assert "probe_success 0.0" in response.text


def test_tls_certificate_expiry_is_reported(
    service: servers.Service, targets: servers.Targets
) -> None:
    result = service.probe("https_ca", f"{targets.https}/ok")
    assert result.success
    assert result.value("probe_http_ssl") == 1
    assert result.value("probe_ssl_earliest_cert_expiry") == targets.not_after.timestamp()
    assert result.value("probe_tls_version_info", version="TLS 1.3") == 1


def test_untrusted_certificate_fails(service: servers.Service, targets: servers.Targets) -> None:
    response = service.get("https_system_ca", f"{targets.https}/ok", debug="true")
    assert "probe_success 0.0" in response.text
    assert "CERTIFICATE_VERIFY_FAILED" in response.text


def test_fail_if_not_ssl(service: servers.Service, targets: servers.Targets) -> None:
    result = service.probe("https_ca", f"{targets.http}/ok")
    assert result.value("probe_http_status_code") == 200
    assert not result.success


def test_refused_connection_fails(service: servers.Service) -> None:
    port = servers.services.free_port()
    result = service.probe("http_2xx", f"http://127.0.0.1:{port}/")
    assert not result.success
    assert "probe_http_status_code" not in result.families


def test_debug_page_shows_trace_metrics_and_module(
    service: servers.Service, targets: servers.Targets
) -> None:
    response = service.get("http_2xx", f"{targets.http}/fail", debug="true")
    assert response.status_code == 200
    text = response.text
    assert text.startswith("Logs for the probe:\n")
    assert "received HTTP 500" in text
    assert "Metrics that would have been returned:\nprobe_dns_lookup_time_seconds" in text.replace(
        "# HELP probe_dns_lookup_time_seconds Returns the time taken for probe dns lookup "
        "in seconds\n# TYPE probe_dns_lookup_time_seconds gauge\n",
        "",
    )
    assert "Module configuration:\nhttp_2xx:\n  prober: http\n  timeout: 5.0" in text


def test_client_certificate_is_presented(
    service: servers.Service, targets: servers.Targets
) -> None:
    url = f"https://localhost:{targets.mtls_port}/ok"
    assert service.probe("https_client_cert", url).success
    # the same server refuses a client without a certificate
    response = service.get("https_ca", url, debug="true")
    assert "probe_success 0.0" in response.text
    assert "request failed" in response.text


def test_silent_server_fails_at_the_deadline(
    service: servers.Service, targets: servers.Targets
) -> None:
    result = service.probe("http_2xx", f"http://127.0.0.1:{targets.silent_port}/", timeout=2)
    assert not result.success
    assert 1.4 <= result.value("probe_duration_seconds") < 1.9


def test_host_name_is_resolved_and_timed(
    service: servers.Service, targets: servers.Targets
) -> None:
    result = service.probe("http_2xx", f"http://localhost:{targets.http_port}/ok")
    assert result.success
    resolve = result.value("probe_http_duration_seconds", phase="resolve")
    assert resolve > 0
    assert result.value("probe_dns_lookup_time_seconds") == resolve
