# ruff: noqa: E501 - PromQL stays on one line per query, as it is read in Grafana
"""The operations manual's System Overview, API Performance and Business Metrics dashboards.

Metric names follow cAdvisor, kube-state-metrics, node_exporter and the API's own
``http_request_duration_seconds`` histogram and ``http_requests_total`` counter.
"""

from __future__ import annotations

from typing import Any

from scripts import dashboard_kit as kit
from scripts.dashboard_kit import Query

RATE = "$__rate_interval"
POD = 'namespace=~"$namespace", pod=~"$pod"'
CONTAINER = f'{POD}, container!="", container!="POD"'
APP = 'namespace=~"$namespace", job=~"$job"'


def system_overview() -> dict[str, Any]:
    cpu = f"sum by (pod) (rate(container_cpu_usage_seconds_total{{{CONTAINER}}}[{RATE}]))"
    mem = f"sum by (pod) (container_memory_working_set_bytes{{{CONTAINER}}})"
    return kit.dashboard(
        "conea-system-overview",
        "Conea / System Overview",
        "CPU, memory and network of the pods and nodes (the manual's kubectl top, as graphs).",
        [
            kit.query_variable("namespace", "Namespace", "label_values(kube_pod_info, namespace)"),
            kit.query_variable(
                "pod", "Pod", 'label_values(kube_pod_info{namespace=~"$namespace"}, pod)'
            ),
        ],
        [
            kit.Row(
                "Summary",
                [
                    kit.stat(
                        "Pods ready",
                        Query(f'sum(kube_pod_status_ready{{{POD}, condition="true"}})'),
                        unit="short",
                        description="Pods whose Ready condition is true.",
                    ),
                    kit.stat(
                        "CPU used",
                        Query(f"sum({cpu})"),
                        unit="cores",
                        description="CPU cores used by the selected pods.",
                    ),
                    kit.stat(
                        "Memory used",
                        Query(f"sum({mem})"),
                        unit="bytes",
                        description="Working set of the selected pods.",
                    ),
                    kit.stat(
                        "Restarts (1h)",
                        Query(
                            f"sum(increase(kube_pod_container_status_restarts_total{{{POD}}}[1h]))"
                        ),
                        unit="short",
                        thresholds=kit.traffic_light(1, 3),
                        description="Container restarts in the last hour (PodRestartingTooOften: 3 in 15m).",
                    ),
                ],
            ),
            kit.Row(
                "CPU",
                [
                    kit.timeseries(
                        "CPU usage by pod",
                        [Query(cpu, "{{pod}}")],
                        unit="cores",
                        description="Cores used per pod (cAdvisor).",
                    ),
                    kit.timeseries(
                        "CPU usage / limit by container",
                        [
                            Query(
                                f"sum by (pod, container) (rate(container_cpu_usage_seconds_total{{{CONTAINER}}}[{RATE}]))"
                                f' / sum by (pod, container) (kube_pod_container_resource_limits{{{POD}, resource="cpu"}})',
                                "{{pod}}/{{container}}",
                            )
                        ],
                        unit="percentunit",
                        thresholds=kit.traffic_light(0.7, 0.9),
                        description="Share of the CPU limit in use; ContainerCPUNearLimit fires over 90% for 10m.",
                    ),
                    kit.timeseries(
                        "CPU throttling by pod",
                        [
                            Query(
                                f"sum by (pod) (rate(container_cpu_cfs_throttled_periods_total{{{CONTAINER}}}[{RATE}]))"
                                f" / sum by (pod) (rate(container_cpu_cfs_periods_total{{{CONTAINER}}}[{RATE}]))",
                                "{{pod}}",
                            )
                        ],
                        unit="percentunit",
                        description="Share of CFS periods in which the pod was throttled at its limit.",
                    ),
                    kit.timeseries(
                        "Node CPU utilisation",
                        [
                            Query(
                                f'1 - avg by (instance) (rate(node_cpu_seconds_total{{mode="idle"}}[{RATE}]))',
                                "{{instance}}",
                            )
                        ],
                        unit="percentunit",
                        max_value=1,
                        description="Busy share of each node's CPUs (node_exporter).",
                    ),
                ],
            ),
            kit.Row(
                "Memory",
                [
                    kit.timeseries(
                        "Memory working set by pod",
                        [Query(mem, "{{pod}}")],
                        unit="bytes",
                        description="What the kubelet and the OOM killer count.",
                    ),
                    kit.timeseries(
                        "Memory working set / limit by container",
                        [
                            Query(
                                f"sum by (pod, container) (container_memory_working_set_bytes{{{CONTAINER}}})"
                                f' / sum by (pod, container) (kube_pod_container_resource_limits{{{POD}, resource="memory"}})',
                                "{{pod}}/{{container}}",
                            )
                        ],
                        unit="percentunit",
                        thresholds=kit.traffic_light(0.8, 0.9),
                        description="At 100% the container is OOM-killed; ContainerMemoryNearLimit fires over 90%.",
                    ),
                    kit.timeseries(
                        "Node memory available",
                        [
                            Query(
                                "node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes",
                                "{{instance}}",
                            )
                        ],
                        unit="percentunit",
                        max_value=1,
                        description="Share of each node's memory still available.",
                    ),
                ],
            ),
            kit.Row(
                "Network",
                [
                    kit.timeseries(
                        "Received by pod",
                        [
                            Query(
                                f"sum by (pod) (rate(container_network_receive_bytes_total{{{POD}}}[{RATE}]))",
                                "{{pod}}",
                            )
                        ],
                        unit="Bps",
                        description="Bytes per second into each pod.",
                    ),
                    kit.timeseries(
                        "Transmitted by pod",
                        [
                            Query(
                                f"sum by (pod) (rate(container_network_transmit_bytes_total{{{POD}}}[{RATE}]))",
                                "{{pod}}",
                            )
                        ],
                        unit="Bps",
                        description="Bytes per second out of each pod.",
                    ),
                ],
            ),
        ],
    )


def api_performance() -> dict[str, Any]:
    bucket = f"http_request_duration_seconds_bucket{{{APP}}}"
    requests = f"sum(rate(http_requests_total{{{APP}}}[{RATE}]))"
    errors = f'sum(rate(http_requests_total{{{APP}, status=~"5.."}}[{RATE}]))'

    def quantile(q: str, by: str = "le") -> str:
        return f"histogram_quantile({q}, sum by ({by}) (rate({bucket}[{RATE}])))"

    return kit.dashboard(
        "conea-api-performance",
        "Conea / API Performance",
        "Latency (from the request-duration histogram), throughput and error ratio of the API.",
        [
            kit.query_variable(
                "namespace", "Namespace", "label_values(http_requests_total, namespace)"
            ),
            kit.query_variable(
                "job", "Job", 'label_values(http_requests_total{namespace=~"$namespace"}, job)'
            ),
        ],
        [
            kit.Row(
                "Summary",
                [
                    kit.stat(
                        "Requests / s",
                        Query(requests),
                        unit="reqps",
                        description="All requests, all pods.",
                    ),
                    kit.stat(
                        "Error ratio (5xx)",
                        Query(f"{errors} / {requests}"),
                        unit="percentunit",
                        thresholds=kit.traffic_light(0.01, 0.05),
                        description="HighErrorRate fires over 5% for 5 minutes.",
                    ),
                    kit.stat(
                        "p95 latency",
                        Query(quantile("0.95")),
                        unit="s",
                        thresholds=kit.traffic_light(0.3, 0.5),
                        description="HighResponseTime fires over 500ms for 5 minutes.",
                    ),
                    kit.stat(
                        "Requests under 500ms",
                        Query(
                            f'sum(rate(http_request_duration_seconds_bucket{{{APP}, le="0.5"}}[{RATE}]))'
                            f" / sum(rate(http_request_duration_seconds_count{{{APP}}}[{RATE}]))"
                        ),
                        unit="percentunit",
                        description="Share of requests answered within 500ms.",
                    ),
                ],
            ),
            kit.Row(
                "Latency",
                [
                    kit.timeseries(
                        "Latency percentiles",
                        [
                            Query(quantile("0.5"), "p50"),
                            Query(quantile("0.95"), "p95"),
                            Query(quantile("0.99"), "p99"),
                        ],
                        unit="s",
                        thresholds=[(None, "green"), (0.5, "red")],
                        description="Percentiles over all pods, from histogram buckets.",
                    ),
                    kit.timeseries(
                        "p95 latency by pod",
                        [Query(quantile("0.95", "pod, le"), "{{pod}}")],
                        unit="s",
                        description="One slow pod shows here before it moves the total.",
                    ),
                ],
            ),
            kit.Row(
                "Throughput and errors",
                [
                    kit.timeseries(
                        "Requests / s by status class",
                        [
                            Query(
                                f"sum by (class) (label_replace(rate(http_requests_total{{{APP}}}[{RATE}]),"
                                ' "class", "${1}xx", "status", "(.).*"))',
                                "{{class}}",
                            )
                        ],
                        unit="reqps",
                        stack=True,
                        description="2xx, 3xx, 4xx, 5xx.",
                    ),
                    kit.timeseries(
                        "Error ratio",
                        [
                            Query(f"{errors} / {requests}", "5xx"),
                            Query(
                                f'sum(rate(http_requests_total{{{APP}, status=~"4.."}}[{RATE}])) / {requests}',
                                "4xx",
                            ),
                        ],
                        unit="percentunit",
                        thresholds=[(None, "green"), (0.05, "red")],
                        description="Failed requests as a share of all requests.",
                    ),
                    kit.timeseries(
                        "Requests / s by pod",
                        [
                            Query(
                                f"sum by (pod) (rate(http_requests_total{{{APP}}}[{RATE}]))",
                                "{{pod}}",
                            )
                        ],
                        unit="reqps",
                        description="Load spread over the replicas.",
                    ),
                ],
            ),
        ],
    )


def business() -> dict[str, Any]:
    total = f"http_requests_total{{{APP}}}"
    return kit.dashboard(
        "conea-business-metrics",
        "Conea / Business Metrics",
        "API usage and user activity, derived from the API's http_requests_total "
        "(labels handler, method, status).",
        [
            kit.query_variable(
                "namespace", "Namespace", "label_values(http_requests_total, namespace)"
            ),
            kit.query_variable(
                "job", "Job", 'label_values(http_requests_total{namespace=~"$namespace"}, job)'
            ),
        ],
        [
            kit.Row(
                "API usage",
                [
                    kit.stat(
                        "API calls (24h)",
                        Query(f"sum(increase({total}[1d]))"),
                        unit="short",
                        description="Requests answered in the last 24 hours.",
                    ),
                    kit.stat(
                        "Successful calls (24h)",
                        Query(f'sum(increase(http_requests_total{{{APP}, status=~"2.."}}[1d]))'),
                        unit="short",
                        description="2xx answers in the last 24 hours.",
                    ),
                    kit.stat(
                        "Traffic vs. a week ago",
                        Query(f"sum(rate({total}[1h])) / sum(rate({total}[1h] offset 1w))"),
                        unit="percentunit",
                        description="This hour's request rate over the same hour last week.",
                    ),
                    kit.stat(
                        "Client errors (4xx)",
                        Query(
                            f'sum(rate(http_requests_total{{{APP}, status=~"4.."}}[1h])) / sum(rate({total}[1h]))'
                        ),
                        unit="percentunit",
                        description="Users' requests refused (validation, auth, not found).",
                    ),
                    kit.timeseries(
                        "API calls / min by endpoint (top 10)",
                        [
                            Query(
                                f"topk(10, sum by (handler) (rate({total}[{RATE}]))) * 60",
                                "{{handler}}",
                            )
                        ],
                        unit="short",
                        description="The most used endpoints.",
                    ),
                    kit.timeseries(
                        "API calls / min by method",
                        [Query(f"sum by (method) (rate({total}[{RATE}])) * 60", "{{method}}")],
                        unit="short",
                        stack=True,
                        description="Reads (GET) against writes.",
                    ),
                ],
            ),
            kit.Row(
                "User activity",
                [
                    kit.timeseries(
                        "User actions / min (writes)",
                        [
                            Query(
                                f'sum(rate(http_requests_total{{{APP}, method=~"POST|PUT|PATCH|DELETE"}}[{RATE}])) * 60',
                                "writes",
                            )
                        ],
                        unit="short",
                        description="Create, update and delete calls: what users do, not what they read.",
                    ),
                    kit.timeseries(
                        "Sign-in and permission failures / min",
                        [
                            Query(
                                f'sum by (status) (rate(http_requests_total{{{APP}, status=~"401|403"}}[{RATE}])) * 60',
                                "{{status}}",
                            )
                        ],
                        unit="short",
                        description="401 and 403 answers; a jump means broken sign-in or an attack.",
                    ),
                    kit.timeseries(
                        "Daily API calls",
                        [Query(f"sum(increase({total}[1d]))", "calls / 24h")],
                        unit="short",
                        description="Rolling 24-hour volume.",
                    ),
                ],
            ),
        ],
    )
