"""A real Prometheus scrapes /probe through blackbox_exporter's usual relabelling."""

from __future__ import annotations

import httpx
import pytest

from tests.probes import servers
from tests.support import services

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def prometheus_config(service_url: str, targets: servers.Targets) -> str:
    address = service_url.removeprefix("http://")
    return f"""
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: blackbox-http
    metrics_path: /probe
    params:
      module: [http_2xx]
    static_configs:
      - targets:
          - {targets.http}/ok
          - {targets.http}/fail
          - {targets.http}/slow
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: {address}
  - job_name: blackbox-tcp
    metrics_path: /probe
    params:
      module: [tcp_connect]
    static_configs:
      - targets: ["127.0.0.1:{targets.http_port}"]
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: {address}
"""


def test_prometheus_stores_probe_success_per_target(
    service: servers.Service, targets: servers.Targets
) -> None:
    with services.prometheus_server(prometheus_config(service.url, targets)) as prom:
        found: dict[str, float] = {}

        def all_scraped() -> bool:
            response = httpx.get(
                f"{prom.url}/api/v1/query", params={"query": "probe_success"}, timeout=5
            )
            found.clear()
            for series in response.json()["data"]["result"]:
                found[series["metric"]["instance"]] = float(series["value"][1])
            return len(found) == 4

        services.wait_for(all_scraped, 30, "probe_success for every target")
        assert found == {
            f"{targets.http}/ok": 1.0,
            f"{targets.http}/fail": 0.0,
            # Prometheus' 1s scrape timeout minus the 0.5s offset: the slow route fails
            # inside the scrape, so Prometheus still stores the answer.
            f"{targets.http}/slow": 0.0,
            f"127.0.0.1:{targets.http_port}": 1.0,
        }
        up = httpx.get(f"{prom.url}/api/v1/query", params={"query": "min(up)"}, timeout=5)
        assert up.json()["data"]["result"][0]["value"][1] == "1"
