"""bench/probe.py, the probe exporter's efficiency against blackbox_exporter: a one-second
run probes http and tcp on both exporters without a failure and prints each prober's
median ratio (dns too, or why it was skipped). The figures are the benchmark's to
print, not a test's to assert."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import services

ROOT = Path(__file__).resolve().parent.parent.parent
RUN = re.compile(r"^1\s+(conea-monitor /probe|blackbox_exporter 0\.23)\s+(\d+)\s+(\d+)\s", re.M)


@pytest.mark.slow
@pytest.mark.integration
def test_a_short_run_prints_every_probers_ratio() -> None:
    services.need_binary("prometheus-blackbox-exporter")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.probe",
            "--seconds",
            "1",
            "--runs",
            "1",
            "--concurrency",
            "4",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for kind in ("http", "tcp"):
        median = rf"^{kind}: median probes per CPU-second, conea/blackbox: \d+\.\d\dx$"
        assert re.search(median, out, re.M), out
    assert re.search(r"^dns: (median probes per CPU-second|skipped \(.+\))", out, re.M), out
    runs = RUN.findall(out)
    assert len(runs) >= 4, out  # http and tcp, both exporters
    assert all(int(probes) > 0 and failed == "0" for _, probes, failed in runs), out
