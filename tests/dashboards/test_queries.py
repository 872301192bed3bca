"""Every PromQL expression of the rules and dashboards, against a real Prometheus.

Prometheus 2.42 scrapes two endpoints served from this test: the exporters' sample
exposition (tests/rules/metric_catalogue.py, labels kept with honor_labels) and the
service's real ``/metrics`` text from ``monitor.metrics`` (scraped as job
"conea-monitor", as in production). It also loads rules/*.yml. Then:

* every expression parses (Prometheus answers 400 with the parser's message if not);
* every dashboard query returns data for series shaped like the exporters' (so a label
  filter such as ``resource="cpu"`` or ``status=~"5.."`` matches what exists);
* every metric name used is in the catalogue;
* every rule evaluates without error and the recording rules produce series.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from scripts import build_dashboards
from scripts import build_prometheusrule as build_rules
from tests.rules import metric_catalogue, promql_names
from tests.support import services

pytestmark = pytest.mark.integration

#: Grafana's built-in variables, as a panel with a 6-hour range would fill them in.
BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}
#: Dashboard queries that need more history than a test has (title -> reason).
NEEDS_HISTORY = {"Traffic vs. a week ago": "compares with the same hour a week ago (offset 1w)"}


def dashboards() -> dict[str, dict[str, Any]]:
    return {
        path.name: json.loads(path.read_text())
        for path in sorted(build_dashboards.OUTPUT.glob("*.json"))
    }


def substitute(expr: str, variables: set[str]) -> str:
    """Fill in Grafana variables: built-ins by value, the dashboard's own by ``.*`` (All)."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name in BUILTINS:
            return BUILTINS[name]
        if name in variables:
            return ".*"
        return match.group(0)  # ${1} etc. belong to PromQL (label_replace)

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", replace, expr)


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(where, panel title, expression with variables filled in) for every panel target."""
    out = []
    for name, data in dashboards().items():
        variables = {variable["name"] for variable in data["templating"]["list"]}
        for panel in data["panels"]:
            for target in panel.get("targets", []):
                out.append(
                    (
                        f"{name}: {panel['title']}",
                        panel["title"],
                        substitute(target["expr"], variables),
                    )
                )
    return out


def annotation_queries() -> list[tuple[str, str]]:
    out = []
    for name, data in dashboards().items():
        for annotation in data["annotations"]["list"]:
            if "expr" in annotation:
                out.append((f"{name}: annotation {annotation['name']}", annotation["expr"]))
    return out


def variable_selectors() -> list[tuple[str, str]]:
    out = []
    for name, data in dashboards().items():
        variables = {variable["name"] for variable in data["templating"]["list"]}
        for variable in data["templating"]["list"][1:]:
            selector = promql_names.variable_selector(variable["query"])
            assert selector is not None, f"{name}: ${variable['name']}: {variable['query']!r}"
            out.append((f"{name}: ${variable['name']}", substitute(selector, variables)))
    return out


def rule_expressions() -> list[tuple[str, str]]:
    return [
        (f"rule {rule.get('alert') or rule.get('record')}", rule["expr"])
        for group in build_rules.load_rule_groups()
        for rule in group["rules"]
    ]


def recorded_names() -> set[str]:
    return {
        rule["record"]
        for group in build_rules.load_rule_groups()
        for rule in group["rules"]
        if "record" in rule
    }


class _Exporter(http.server.BaseHTTPRequestHandler):
    pages: dict[str, str] = {}

    def do_GET(self) -> None:
        body = self.pages.get(self.path, "").encode()
        self.send_response(200 if self.path in self.pages else 404)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def exporter() -> Iterator[int]:
    _Exporter.pages = {
        "/external": metric_catalogue.EXTERNAL_EXPOSITION,
        "/service": metric_catalogue.service_exposition(),
    }
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Exporter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class Client:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=10)

    def query(self, expr: str) -> tuple[int, dict[str, Any]]:
        response = self.http.post("/api/v1/query", data={"query": expr})
        return response.status_code, response.json()

    def series(self, selector: str) -> list[dict[str, str]]:
        response = self.http.get("/api/v1/series", params={"match[]": selector})
        response.raise_for_status()
        data: list[dict[str, str]] = response.json()["data"]
        return data


@pytest.fixture(scope="module")
def prometheus() -> Iterator[Client]:
    files = {f"rules/{path.name}": path.read_text() for path in build_rules.rule_files()}
    with exporter() as port:
        config = f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ["rules/*.yml"]
scrape_configs:
  - job_name: exporters
    honor_labels: true
    metrics_path: /external
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
  - job_name: conea-monitor
    metrics_path: /service
    static_configs: [{{targets: ["127.0.0.1:{port}"], labels: {{namespace: monitoring}}}}]
"""
        with services.prometheus_server(config, files) as server:
            client = Client(server.url)
            try:

                def scraped() -> bool:
                    _, body = client.query(
                        'min(count_over_time(up{job=~"exporters|conea-monitor"}[1m])) >= 4'
                    )
                    return bool(body["data"]["result"])

                services.wait_for(scraped, 30, "four scrapes of both jobs")
                yield client
            finally:
                client.http.close()


def test_every_rule_and_panel_expression_parses(prometheus: Client) -> None:
    expressions = rule_expressions() + [(where, expr) for where, _, expr in dashboard_queries()]
    expressions += variable_selectors() + annotation_queries()
    assert len(expressions) > 100
    failures = []
    for where, expr in expressions:
        status, body = prometheus.query(expr)
        if status != 200 or body.get("status") != "success":
            failures.append(f"{where}: {body.get('error')} in {expr!r}")
    assert failures == []


def test_a_broken_expression_is_reported(prometheus: Client) -> None:
    status, body = prometheus.query("sum by (le (rate(x[5m]))")
    assert status == 400 and body["errorType"] == "bad_data"


def test_every_dashboard_query_returns_data(prometheus: Client) -> None:
    empty = []
    for where, title, expr in dashboard_queries():
        if title in NEEDS_HISTORY:
            continue
        _, body = prometheus.query(expr)
        if not body["data"]["result"]:
            empty.append(f"{where}: {expr}")
    assert empty == []


def test_every_dashboard_variable_finds_values(prometheus: Client) -> None:
    for where, selector in variable_selectors():
        assert prometheus.series(selector), f"{where}: no series for {selector}"


def test_every_rule_evaluates_and_recording_rules_record(prometheus: Client) -> None:
    def evaluated() -> bool:
        rules = prometheus.http.get("/api/v1/rules").json()["data"]["groups"]
        return all(rule["lastEvaluation"] > "2000" for group in rules for rule in group["rules"])

    services.wait_for(evaluated, 20, "one evaluation of every rule")
    groups = prometheus.http.get("/api/v1/rules").json()["data"]["groups"]
    unhealthy = [
        f"{rule['name']}: {rule.get('lastError')}"
        for group in groups
        for rule in group["rules"]
        if rule["health"] != "ok"
    ]
    assert unhealthy == []
    loaded = {rule["name"] for group in groups for rule in group["rules"]}
    assert {
        rule["alert"] for rule in build_rules.alerting_rules(build_rules.load_rule_groups())
    } <= loaded

    def recorded() -> bool:
        return all(prometheus.query(name)[1]["data"]["result"] for name in recorded_names())

    services.wait_for(recorded, 20, "recording rules")
    _, body = prometheus.query("conea:kube_pod_deployment:info")
    assert [series["metric"] for series in body["data"]["result"]] == [
        {
            "__name__": "conea:kube_pod_deployment:info",
            "namespace": "production",
            "pod": "conea-api-7d9b8c6f5-xvn4m",
            "deployment": "conea-api",
        }
    ]


def test_every_metric_name_is_in_the_catalogue() -> None:
    known = metric_catalogue.known_names() | recorded_names()
    used: dict[str, set[str]] = {}
    sources = rule_expressions() + [(where, expr) for where, _, expr in dashboard_queries()]
    sources += variable_selectors() + annotation_queries()
    for where, expr in sources:
        for name in promql_names.metric_names(expr):
            used.setdefault(name, set()).add(where)
    unknown = {name: sorted(where) for name, where in used.items() if name not in known}
    assert unknown == {}
    # The extraction found the families we expect to be used.
    assert {
        "probe_success",
        "pg_up",
        "redis_up",
        "http_requests_total",
        "conea_monitor_executions_total",
        "kube_pod_owner",
    } <= set(used)


def test_the_manuals_summary_quantile_would_be_caught() -> None:
    """The manual's HighResponseTime selected a summary that the API does not expose."""
    names = promql_names.metric_names('http_request_duration_seconds{quantile="0.95"} > 0.5')
    assert names - metric_catalogue.known_names() == {"http_request_duration_seconds"}
