"""Probe regexps take linear time (RE2), and the debug log stays bounded."""

from __future__ import annotations

import pytest

from tests.probes import servers


@pytest.mark.timeout(60)
def test_catastrophic_body_and_header_regexps_finish(
    service: servers.Service, targets: servers.Targets
) -> None:
    # (a+)+b against 100,000 "a" backtracks for ever in Python's re; RE2 is linear.
    result = service.probe("http_catastrophic", f"{targets.http}/letters")
    assert result.success
    assert result.value("probe_http_uncompressed_body_length") == servers.LETTERS
    assert result.value("probe_failed_due_to_regex") == 0


@pytest.mark.timeout(60)
def test_catastrophic_tcp_expect_finishes(
    service: servers.Service, targets: servers.Targets
) -> None:
    response = service.get(
        "tcp_catastrophic", f"127.0.0.1:{targets.letters_port}", timeout=30, debug="true"
    )
    assert "connection closed before a line matched '(a+)+b'" in response.text
    assert "probe_failed_due_to_regex 1.0" in response.text
    assert "the probe did not finish" not in response.text
    # what the target sent is shown, cut short
    assert "… (59507 more characters)" in response.text
    assert len(response.text) < 10_000
