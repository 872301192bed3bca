"""The probe service remembers the targets a module admitted, until its modules are
reloaded: a narrower allowlist refuses at once what the old one let through."""

from __future__ import annotations

import pathlib
import re

import pytest

from monitor import metrics
from monitor.errors import ProbeError
from monitor.probes import service

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
    probes = service.ProbeService.from_file(path, metrics.Metrics())
    try:
        for _ in range(2):  # the second time from what it remembers
            result = await probes.probe("tcp_connect", "127.0.0.1:1")
            assert result.target == "127.0.0.1:1"
        path.write_text(MODULES.format(cidr="10.0.0.0/8"))
        probes.reload(path)
        with pytest.raises(ProbeError, match=re.escape("'127.0.0.1:1' is not allowed")):
            await probes.probe("tcp_connect", "127.0.0.1:1")
    finally:
        await probes.aclose()


async def test_a_refused_target_is_refused_every_time(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "probes.yml"
    path.write_text(MODULES.format(cidr="10.0.0.0/8"))
    probes = service.ProbeService.from_file(path, metrics.Metrics())
    for _ in range(2):
        with pytest.raises(ProbeError, match="is not allowed for module 'tcp_connect'"):
            await probes.probe("tcp_connect", "127.0.0.1:1")
    await probes.aclose()
