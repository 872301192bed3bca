"""/probe refuses what it must not do: 400 with the reason, 503 past the cap."""

from __future__ import annotations

import threading
import time

import httpx

from tests.probes import servers
from tests.support import services


def test_unknown_module_is_400_naming_it(service: servers.Service) -> None:
    before = service.counted("unknown", "rejected")
    response = service.get("nope", "127.0.0.1:80")
    assert response.status_code == 400
    assert response.text.startswith("unknown module 'nope' (known: banner, banner_silent, ")
    assert ", http_2xx, " in response.text
    assert service.counted("unknown", "rejected") == before + 1


def test_missing_parameters_are_400(service: servers.Service) -> None:
    response = httpx.get(f"{service.url}/probe", params={"target": "127.0.0.1:1"})
    assert response.status_code == 400
    assert response.text == "module parameter is missing\n"
    response = httpx.get(f"{service.url}/probe", params={"module": "tcp_connect"})
    assert response.status_code == 400
    assert response.text == "target parameter is missing\n"


def test_disallowed_address_is_400(service: servers.Service) -> None:
    before = service.counted("http_2xx", "rejected")
    response = service.get("http_2xx", "http://169.254.169.254/latest/meta-data/")
    assert response.status_code == 400
    assert response.text == (
        "target 'http://169.254.169.254/latest/meta-data/' is not allowed for module "
        "'http_2xx': address '169.254.169.254' matches nothing in allow.cidrs or allow.urls\n"
    )
    assert service.counted("http_2xx", "rejected") == before + 1


def test_disallowed_host_name_is_400(service: servers.Service) -> None:
    response = service.get("tcp_connect", "db.example.com:5432")
    assert response.status_code == 400
    assert "host 'db.example.com' matches nothing in allow.hosts" in response.text


def test_module_allowlist_replaces_the_default(
    service: servers.Service, targets: servers.Targets
) -> None:
    response = service.get("http_internal_only", f"{targets.http}/ok")
    assert response.status_code == 400
    assert "not allowed for module 'http_internal_only'" in response.text


def test_credentials_in_the_target_are_refused(service: servers.Service) -> None:
    response = service.get("http_2xx", "http://admin:s3cret@127.0.0.1/")
    assert response.status_code == 400
    assert "s3cret" not in response.text
    assert "must not carry credentials" in response.text


def test_other_schemes_are_refused(service: servers.Service) -> None:
    response = service.get("http_2xx", "file:///etc/passwd")
    assert response.status_code == 400
    assert "scheme 'file' is not one of http, https" in response.text


def test_bad_timeout_header_is_400(service: servers.Service, targets: servers.Targets) -> None:
    response = service.get("http_2xx", f"{targets.http}/ok", timeout=-3)
    assert response.status_code == 400
    assert "X-Prometheus-Scrape-Timeout-Seconds '-3' must be positive" in response.text


def test_concurrency_cap_answers_503(targets: servers.Targets) -> None:
    config = """
max_concurrent_probes: 1
allow: {cidrs: [127.0.0.0/8]}
modules:
  http_2xx: {prober: http, timeout: 3s}
"""
    with servers.service(config) as service:
        slow: list[httpx.Response] = []
        thread = threading.Thread(
            target=lambda: slow.append(service.get("http_2xx", f"{targets.http}/slow"))
        )
        thread.start()
        services.wait_for(lambda: service.probes.in_flight == 1, 10, "the slow probe")
        response = service.get("http_2xx", f"{targets.http}/ok")
        assert response.status_code == 503
        assert response.text.startswith("too many probes in flight (1, max_concurrent_probes)")
        assert service.metrics.registry.get_sample_value("conea_monitor_probes_in_flight") == 1
        thread.join(10)
        assert slow[0].status_code == 200
        # The slot is free again.
        assert service.get("http_2xx", f"{targets.http}/ok").status_code == 200
        assert service.metrics.registry.get_sample_value("conea_monitor_probes_in_flight") == 0


def test_probe_output_stays_off_the_service_metrics(
    service: servers.Service, targets: servers.Targets
) -> None:
    service.probe("http_2xx", f"{targets.http}/ok")
    names = {m.name for m in service.metrics.registry.collect()}
    assert not any(name.startswith(("probe_", "pg_", "redis_")) for name in names)
    # and each probe's answer is its own: no leftovers from another module's probe
    service.probe("tcp_connect", f"127.0.0.1:{targets.http_port}")
    again = service.probe("tcp_connect", f"127.0.0.1:{targets.http_port}")
    assert "probe_http_status_code" not in again.families


def test_builtin_defaults_serve_probes(targets: servers.Targets) -> None:
    with servers.service(None) as service:
        assert service.probe("http_2xx", f"{targets.http}/ok").success
        assert service.probe("tcp_connect", f"localhost:{targets.http_port}").success
        started = time.monotonic()
        response = service.get("http_2xx", "http://10.1.2.3/")
        assert response.status_code == 400
        assert time.monotonic() - started < 2
