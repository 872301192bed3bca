"""A probe's output: its own registry, written exactly as prometheus-client writes it."""

from __future__ import annotations

import math

import prometheus_client
from prometheus_client import parser

from monitor.probes import output


def test_render_is_what_generate_latest_writes() -> None:
    registry, recorder = output.new_registry()
    recorder.gauge("probe_success", "Displays whether or not the probe was a success", True)
    recorder.gauge("probe_ssl_earliest_cert_expiry", "expiry", 1930626367.0)
    recorder.gauge("big", "a \\ backslash\nand a new line", 123456789012345678)
    recorder.gauge("tiny", "small", 1e-7)
    recorder.labelled(
        "pg_stat_activity_count", "n", {"datname": 'we"ird\\db\n', "state": "idle"}, 3
    )
    recorder.labelled("pg_stat_activity_count", "n", {"datname": "app", "state": "active"}, 0)
    recorder.labelled("lag", "lag", {"x": "y"}, math.nan)
    recorder.labelled("lag", "lag", {"x": "z"}, -math.inf)
    assert recorder.render() == prometheus_client.generate_latest(registry)
    families = {
        f.name: f for f in parser.text_string_to_metric_families(recorder.render().decode())
    }
    sample = families["pg_stat_activity_count"].samples[0]
    assert sample.labels == {"datname": 'we"ird\\db\n', "state": "idle"}
    assert sample.value == 3
    assert families["probe_success"].samples[0].value == 1


def test_a_later_gauge_replaces_the_value() -> None:
    _, recorder = output.new_registry()
    recorder.gauge("pg_up", "up", False)
    recorder.gauge("pg_up", "up", True)
    assert recorder.value("pg_up") == 1
    assert recorder.render().count(b"\npg_up ") == 1


def test_trace_keeps_lines_only_in_debug() -> None:
    quiet, loud = output.Trace(False), output.Trace(True)
    quiet("connecting")
    loud("connecting")
    assert quiet.lines == []
    assert loud.lines[0].endswith("ms connecting")


def test_trace_lines_are_bounded() -> None:
    trace = output.Trace(True)
    trace("x" * 600)
    assert trace.lines[0].endswith(f"ms {'x' * 500}… (100 more characters)")
    for n in range(5000):
        trace(f"line {n}")
    assert len(trace.lines) == output.Trace.MAX_LINES + 1
    assert trace.lines[-1].endswith("ms … further lines left out")
    assert trace.lines[-2].endswith("ms line 998")
