"""The probe service remembers the targets a module admitted, until its modules are
reloaded: a narrower allowlist refuses at once what the old one let through. A
connection the loop makes directly fails as aiohttp's own would."""

from __future__ import annotations

import pathlib
import re

import pytest

from monitor import metrics, probes
from monitor.errors import ProbeError
from tests.probes import servers
from tests.support import services

MODULES = """
allow:
  cidrs: [{cidr}]
modules:
  tcp_connect:
    prober: tcp
    timeout: 2s
"""


async def test_a_reload_forgets_the_targets_admitted_before(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "probes.yml"
    path.write_text(MODULES.format(cidr="127.0.0.0/8"))
    runner = probes.ProbeService.from_file(path, metrics.Metrics())
    try:
        for _ in range(2):  # the second time from what it remembers
            result = await runner.probe("tcp_connect", "127.0.0.1:1")
            assert result.target == "127.0.0.1:1"
        path.write_text(MODULES.format(cidr="10.0.0.0/8"))
        runner.reload(path)
        with pytest.raises(ProbeError, match=re.escape("'127.0.0.1:1' is not allowed")):
            await runner.probe("tcp_connect", "127.0.0.1:1")
    finally:
        await runner.aclose()


async def test_a_refused_target_is_refused_every_time(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "probes.yml"
    path.write_text(MODULES.format(cidr="10.0.0.0/8"))
    runner = probes.ProbeService.from_file(path, metrics.Metrics())
    for _ in range(2):
        with pytest.raises(ProbeError, match="is not allowed for module 'tcp_connect'"):
            await runner.probe("tcp_connect", "127.0.0.1:1")
    await runner.aclose()


def test_a_refused_connection_is_reported_as_aiohttp_reports_it(
    service: servers.Service,
) -> None:
    port = services.free_port()
    response = service.get("http_2xx", f"http://127.0.0.1:{port}/", debug="true")
    assert "probe_success 0.0" in response.text
    assert f"request failed: ClientConnectorError: Cannot connect to host 127.0.0.1:{port}" in (
        response.text
    )
