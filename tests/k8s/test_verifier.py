"""monitor.engine.verifier against a real Prometheus scraping a gauge the test sets.

(It lives beside the Kubernetes tests because the same helper owns both.)
"""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from collections.abc import Iterator

import pytest

from monitor.engine import verifier
from tests.support import services

pytestmark = pytest.mark.integration


class Gauge:
    """A one-metric exporter on 127.0.0.1: ``conea_test_error_ratio{service="api"} <value>``."""

    def __init__(self, value: float) -> None:
        self.value = value
        gauge = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = f'conea_test_error_ratio{{service="api"}} {gauge.value}\n'.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


RULES = """
groups:
- name: test
  interval: 1s
  rules:
  - alert: ConeaTestHighErrors
    expr: conea_test_error_ratio > 0.5
    labels: {severity: critical}
"""


@pytest.fixture(scope="module")
def gauge() -> Iterator[Gauge]:
    g = Gauge(0.9)
    yield g
    g.close()


@pytest.fixture(scope="module")
def prometheus(gauge: Gauge) -> Iterator[services.Prometheus]:
    config = f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: [rules.yml]
scrape_configs:
- job_name: test
  static_configs: [{{targets: ["127.0.0.1:{gauge.port}"]}}]
"""
    with services.prometheus_server(config, {"rules.yml": RULES}) as prom:
        yield prom


@pytest.fixture()
def verify(prometheus: services.Prometheus) -> Iterator[verifier.Verifier]:
    v = verifier.Verifier(prometheus.url, timeout=5)
    yield v
    v.close()


async def until(check, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.25)


async def test_a_condition_holds_once_the_metric_comes_back(gauge, verify):
    gauge.value = 0.9
    await until(lambda: verify.holds("conea_test_error_ratio > 0.5"))
    assert not await verify.holds('conea_test_error_ratio{service="api"} < 0.05')
    gauge.value = 0.01  # the remediation worked
    await until(lambda: verify.holds('conea_test_error_ratio{service="api"} < 0.05'))


async def test_alert_firing_reads_the_alerts_series(gauge, verify):
    gauge.value = 0.9
    await until(lambda: verify.alert_firing("ConeaTestHighErrors", {"severity": "critical"}))
    assert not await verify.alert_firing("ConeaTestHighErrors", {"severity": "warning"})
    gauge.value = 0.0
    await until(lambda: _not(verify.alert_firing("ConeaTestHighErrors")))


async def _not(check) -> bool:
    return not await check


async def test_scalar_results_follow_the_rule(verify):
    assert await verify.holds("vector(1)")
    assert await verify.holds("scalar(vector(2))")
    assert not await verify.holds("scalar(vector(0))")
    assert not await verify.holds("absent(vector(1))")
    assert await verify.holds("vector(0)")  # a series is returned: it holds


async def test_a_rejected_query_is_a_permanent_error(verify):
    with pytest.raises(verifier.QueryError) as caught:
        await verify.holds("sum(rate(")
    assert caught.value.permanent  # waiting cannot fix a typo
    assert "sum(rate(" in str(caught.value) and "400" in str(caught.value)


async def test_unreachable_prometheus_is_a_temporary_error():
    v = verifier.Verifier(f"http://127.0.0.1:{services.free_port()}", timeout=1)
    try:
        with pytest.raises(verifier.QueryError) as caught:
            await v.holds("up")
        assert not caught.value.permanent
        assert "did not answer" in str(caught.value)
    finally:
        v.close()


def test_alerts_expr_quotes_label_values():
    assert verifier.alerts_expr("High", {"pod": 'a"b\\c'}) == (
        'ALERTS{alertname="High",pod="a\\"b\\\\c",alertstate="firing"}'
    )
    with pytest.raises(verifier.QueryError, match="'bad-name' is not a valid label name"):
        verifier.alerts_expr("High", {"bad-name": "x"})
