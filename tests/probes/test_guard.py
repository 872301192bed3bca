"""/probe never probes conea-monitor itself, whatever the module's allowlist says."""

from __future__ import annotations

import logging
import socket
import urllib.parse

import pytest

from monitor.probes import guard
from tests.probes import servers


def inner(service: servers.Service, targets: servers.Targets) -> str:
    """A probe request to this service that, if it ran, would count a tcp_connect."""
    return f"/probe?module=tcp_connect&target=127.0.0.1:{targets.http_port}"


@pytest.mark.parametrize(
    ("module", "target"),
    [
        ("http_2xx", "http://127.0.0.1:{port}{inner}"),  # where the request arrived
        ("http_2xx", "http://localhost:{port}{inner}"),  # a name for it
        ("http_2xx", "http://127.0.0.2:{port}{inner}"),  # another loopback address
        ("http_post_2xx", "http://127.0.0.1:{port}{inner}"),
        ("tcp_connect", "127.0.0.1:{port}"),
        ("tcp_connect", "localhost:{port}"),
    ],
)
def test_target_on_the_service_port_is_refused(
    service: servers.Service,
    targets: servers.Targets,
    caplog: pytest.LogCaptureFixture,
    module: str,
    target: str,
) -> None:
    url = target.format(port=service.port, inner=inner(service, targets))
    inner_before = service.counted("tcp_connect", "success")
    rejected_before = service.counted(module, "rejected")
    with caplog.at_level(logging.WARNING, logger="monitor.probes.service"):
        response = service.get(module, url, debug="true")
    assert response.status_code == 200
    assert "probe_success 0.0" in response.text
    reason = f"port {service.port}; this probe request arrived on 127.0.0.1:{service.port}): "
    assert reason in response.text
    assert "conea-monitor never probes itself" in response.text
    assert any(reason in record.getMessage() for record in caplog.records)
    assert service.counted(module, "rejected") == rejected_before + 1
    assert service.counted("tcp_connect", "success") == inner_before  # nothing reached it


def test_redirect_to_the_service_is_refused(
    service: servers.Service, targets: servers.Targets
) -> None:
    own = f"http://127.0.0.1:{service.port}{inner(service, targets)}"
    inner_before = service.counted("tcp_connect", "success")
    target = f"{targets.http}/redirect-to?{urllib.parse.urlencode({'url': own})}"
    response = service.get("http_2xx", target, debug="true")
    assert response.status_code == 200
    assert f"GET {own}" in response.text
    assert f"refused: target '{own}' reaches this service itself" in response.text
    assert "probe_success 0.0" in response.text
    assert service.counted("tcp_connect", "success") == inner_before


def test_other_ports_on_loopback_still_work(
    service: servers.Service, targets: servers.Targets
) -> None:
    assert service.probe("http_2xx", f"http://localhost:{targets.http_port}/ok").success
    assert service.probe("tcp_connect", f"127.0.0.1:{targets.http_port}").success


def test_local_addresses() -> None:
    assert guard.is_local("127.0.0.1") and guard.is_local("127.3.2.1")
    assert guard.is_local("::1") and guard.is_local("::ffff:127.0.0.1")
    assert guard.is_local("0.0.0.0") and guard.is_local("::")
    assert not guard.is_local("192.0.2.1")  # TEST-NET-1: on no interface
    own = guard.Own("127.0.0.1", 8080)
    assert own.is_self("127.0.0.1", 8080) and own.is_self("::1", 8080)
    assert not own.is_self("127.0.0.1", 8081) and not own.is_self("192.0.2.1", 8080)


def test_an_address_of_this_host_is_local() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # UDP: picks the outgoing address, sends nothing
        except OSError:
            pytest.skip("no route off loopback here")
        address = sock.getsockname()[0]
    assert guard.is_local(address)
    assert guard.Own("127.0.0.1", 8080).is_self(address, 8080)
