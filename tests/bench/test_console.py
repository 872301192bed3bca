"""bench/console.py at a tiny size: it seeds the store through the schema, serves every
page it times with 200, and reports each page's p50 and p99 (the figures are the
benchmark's, not the test's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench import console as bench

ROOT = Path(__file__).resolve().parent.parent.parent


def test_a_tiny_console_bench_times_every_page() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.console", "--executions", "500", "--requests", "3", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["executions"] == 500
    assert set(result["pages"]) == set(bench.pages(500))
    for figures in result["pages"].values():
        assert set(figures) == {"path", "p50_ms", "p99_ms", "cpu_ms"}
