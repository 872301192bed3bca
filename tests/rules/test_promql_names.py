"""The PromQL name extractor and the metric catalogue the rules and dashboards are held to."""

from __future__ import annotations

import pytest

from tests.rules import metric_catalogue, promql_names


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        (
            'sum by (namespace, le) (rate(http_request_duration_seconds_bucket{job=~"$job"}[5m]))',
            {"http_request_duration_seconds_bucket"},
        ),
        ("a / on (pod) group_left (deployment) b > 0.9 and c offset 1w", {"a", "b", "c"}),
        (
            'label_replace(x{status=~"5.."}, "class", "${1}xx", "status", "(.).*") or vector(0)',
            {"x"},
        ),
        ("histogram_quantile(0.95, sum(rate(h_bucket[1m]))) > 1 / 60", {"h_bucket"}),
        ("max_over_time(probe_success[1h:5m]) - time() < 3 * 86400", {"probe_success"}),
        ("conea:container_cpu_limit:ratio * 2", {"conea:container_cpu_limit:ratio"}),
        ('absent(up{job="conea-monitor"})', {"up"}),
        (
            "sum without (instance) (node_memory_MemTotal_bytes) unless bool_metric",
            {"node_memory_MemTotal_bytes", "bool_metric"},
        ),
    ],
)
def test_metric_names_finds_exactly_the_selected_metrics(expr: str, names: set[str]) -> None:
    assert promql_names.metric_names(expr) == names


def test_variable_selector_of_label_values_queries() -> None:
    assert promql_names.variable_selector("label_values(pg_up, namespace)") == "pg_up"
    assert (
        promql_names.variable_selector(
            'label_values(pg_up{namespace=~"$namespace", job=~"$job"}, instance)'
        )
        == 'pg_up{namespace=~"$namespace", job=~"$job"}'
    )
    assert promql_names.variable_selector("label_values(namespace)") is None
    assert promql_names.variable_selector("query_result(up)") is None


def test_catalogue_exercises_every_service_metric() -> None:
    """Each metric of monitor.metrics appears in the sample service exposition, so a new
    metric added there is either given a sample here or noticed."""
    exercised = metric_catalogue.service_metrics()
    empty = [family.name for family in exercised.registry.collect() if not family.samples]
    assert empty == []
    names = metric_catalogue.service_names()
    assert {
        "conea_monitor_executions_total",
        "conea_monitor_time_to_recover_seconds_bucket",
        "conea_monitor_build_info",
        "conea_monitor_paused",
        "conea_monitor_breaker_open",
    } <= names


def test_catalogue_holds_the_exporters_names() -> None:
    names = metric_catalogue.external_names()
    for expected in (
        "probe_success",
        "pg_stat_activity_count",
        "redis_memory_max_bytes",
        "container_cpu_usage_seconds_total",
        "kube_pod_owner",
        "http_request_duration_seconds_bucket",
        "http_requests_total",
    ):
        assert expected in names
    # A summary quantile (the manual's mistake) is not something the API exposes.
    assert "http_request_duration_seconds" not in names
