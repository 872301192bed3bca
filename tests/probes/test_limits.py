"""Probe bodies are streamed under a cap, and probe regexps take linear time (RE2)."""

from __future__ import annotations

import tracemalloc

import pytest

from tests.probes import servers

MiB = 1 << 20


def test_huge_body_fails_the_probe_after_reading_at_most_the_limit(
    service: servers.Service, targets: servers.Targets
) -> None:
    # http_catastrophic keeps the body for its regexp, under the default 1 MiB limit.
    tracemalloc.start()
    try:
        response = service.get("http_catastrophic", f"{targets.http}/huge", debug="true")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    sent = targets.sent.wait()
    assert response.status_code == 200
    assert "body is over body_size_limit (1048576 bytes); stopped reading" in response.text
    assert "probe_success 0.0" in response.text
    assert "probe_http_uncompressed_body_length 1.048577e+06" in response.text
    # The server saw the client hang up: a small part of the 512 MiB went out
    # (what sits in socket buffers on the way included) ...
    assert sent < 64 * MiB < servers.HUGE
    # ... and the process held a few MiB for it, not the body.
    assert peak < 32 * MiB


def test_declared_length_over_the_limit_is_not_read(
    service: servers.Service, targets: servers.Targets
) -> None:
    response = service.get("http_2xx", f"{targets.http}/huge?length=1", debug="true")
    sent = targets.sent.wait()
    assert "Content-Length 536870912 is over body_size_limit (1048576 bytes)" in response.text
    assert "probe_success 0.0" in response.text
    assert "probe_http_content_length 5.36870912e+08" in response.text
    assert "probe_http_uncompressed_body_length 0.0" in response.text
    assert sent < 64 * MiB


def test_body_under_the_limit_is_checked_by_regexp(
    service: servers.Service, targets: servers.Targets
) -> None:
    # http_small_body: body_size_limit 64KiB, body must match ^a+$
    under = service.probe("http_small_body", f"{targets.http}/huge?bytes={60 << 10}")
    targets.sent.wait()
    assert under.success
    assert under.value("probe_http_uncompressed_body_length") == 60 << 10
    assert under.value("probe_failed_due_to_regex") == 0
    over = service.get("http_small_body", f"{targets.http}/huge?bytes={65 << 10}", debug="true")
    assert targets.sent.wait() == 65 << 10  # small enough to be all in flight at once
    assert "body is over body_size_limit (65536 bytes); stopped reading" in over.text
    assert "probe_success 0.0" in over.text


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
