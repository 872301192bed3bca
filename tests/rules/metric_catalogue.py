# ruff: noqa: E501 - the sample exposition has one series per line, as exporters write it
"""The one catalogue of metric names the rules and dashboards may use.

External names (blackbox_exporter, postgres_exporter, redis_exporter, cAdvisor,
kube-state-metrics, node_exporter, Prometheus itself, and the API's ``http_*``) are
written below as a sample exposition, one series per name with the label names those
exporters really attach, so the same text serves as the catalogue *and* as data for a
real Prometheus in tests/dashboards/test_queries.py. The service's own names come from
``monitor.metrics.Metrics().registry``, exercised once per labelled metric.
"""

from __future__ import annotations

import re

from prometheus_client import exposition
from prometheus_client import registry as client_registry

from monitor import metrics

#: Exporter series as a sample exposition (Prometheus text format). ``job`` and
#: ``instance`` are set here because they are what each exporter's scrape gives them;
#: the test scrape keeps them (honor_labels).
EXTERNAL_EXPOSITION = """\
# Prometheus
up{job="kubelet",instance="10.0.0.9:10250"} 1
# blackbox_exporter (prober/http.go, prober/prober.go, prober/dns.go, prober/tls.go)
probe_success{job="conea-probes",instance="https://api.conea.io/health",module="http_2xx",namespace="production"} 1
probe_duration_seconds{job="conea-probes",instance="https://api.conea.io/health",module="http_2xx",namespace="production"} 0.21
probe_http_duration_seconds{job="conea-probes",instance="https://api.conea.io/health",module="http_2xx",namespace="production",phase="resolve"} 0.01
probe_http_duration_seconds{job="conea-probes",instance="https://api.conea.io/health",module="http_2xx",namespace="production",phase="connect"} 0.02
probe_http_duration_seconds{job="conea-probes",instance="https://api.conea.io/health",module="http_2xx",namespace="production",phase="tls"} 0.05
probe_http_duration_seconds{job="conea-probes",instance="https://api.conea.io/health",module="http_2xx",namespace="production",phase="processing"} 0.1
probe_http_duration_seconds{job="conea-probes",instance="https://api.conea.io/health",module="http_2xx",namespace="production",phase="transfer"} 0.01
probe_http_status_code{job="conea-probes",instance="https://api.conea.io/health",module="http_2xx",namespace="production"} 200
probe_http_content_length{job="conea-probes",instance="https://api.conea.io/health",module="http_2xx",namespace="production"} 15
probe_http_redirects{job="conea-probes",instance="https://api.conea.io/health",module="http_2xx",namespace="production"} 0
probe_http_ssl{job="conea-probes",instance="https://api.conea.io/health",module="http_2xx",namespace="production"} 1
probe_http_version{job="conea-probes",instance="https://api.conea.io/health",module="http_2xx",namespace="production"} 1.1
probe_dns_lookup_time_seconds{job="conea-probes",instance="https://api.conea.io/health",module="http_2xx",namespace="production"} 0.01
probe_ip_protocol{job="conea-probes",instance="https://api.conea.io/health",module="http_2xx",namespace="production"} 4
probe_ssl_earliest_cert_expiry{job="conea-probes",instance="https://api.conea.io/health",module="http_2xx",namespace="production"} 1.9e+09
probe_ssl_last_chain_expiry_timestamp_seconds{job="conea-probes",instance="https://api.conea.io/health",module="http_2xx",namespace="production"} 1.9e+09
probe_tls_version_info{job="conea-probes",instance="https://api.conea.io/health",module="http_2xx",namespace="production",version="TLS 1.3"} 1
# postgres_exporter (collector/pg_stat_activity.go, pg_stat_database.go, pg_locks.go, ...)
pg_up{job="postgres-exporter",instance="10.0.1.5:9187",namespace="production"} 1
pg_settings_max_connections{job="postgres-exporter",instance="10.0.1.5:9187",namespace="production",server="10.0.1.5:5432"} 200
pg_stat_activity_count{job="postgres-exporter",instance="10.0.1.5:9187",namespace="production",datname="conea_production",state="active"} 12
pg_stat_activity_count{job="postgres-exporter",instance="10.0.1.5:9187",namespace="production",datname="conea_production",state="idle in transaction"} 1
pg_stat_activity_max_tx_duration{job="postgres-exporter",instance="10.0.1.5:9187",namespace="production",datname="conea_production",state="active"} 0.5
pg_stat_activity_max_tx_duration{job="postgres-exporter",instance="10.0.1.5:9187",namespace="production",datname="conea_production",state="idle in transaction"} 42
pg_stat_database_numbackends{job="postgres-exporter",instance="10.0.1.5:9187",namespace="production",datid="16384",datname="conea_production"} 13
pg_stat_database_xact_commit{job="postgres-exporter",instance="10.0.1.5:9187",namespace="production",datid="16384",datname="conea_production"} 1000
pg_stat_database_xact_rollback{job="postgres-exporter",instance="10.0.1.5:9187",namespace="production",datid="16384",datname="conea_production"} 3
pg_stat_database_blks_read{job="postgres-exporter",instance="10.0.1.5:9187",namespace="production",datid="16384",datname="conea_production"} 50
pg_stat_database_blks_hit{job="postgres-exporter",instance="10.0.1.5:9187",namespace="production",datid="16384",datname="conea_production"} 9950
pg_stat_database_tup_returned{job="postgres-exporter",instance="10.0.1.5:9187",namespace="production",datid="16384",datname="conea_production"} 5000
pg_stat_database_tup_fetched{job="postgres-exporter",instance="10.0.1.5:9187",namespace="production",datid="16384",datname="conea_production"} 4000
pg_stat_database_tup_inserted{job="postgres-exporter",instance="10.0.1.5:9187",namespace="production",datid="16384",datname="conea_production"} 300
pg_stat_database_tup_updated{job="postgres-exporter",instance="10.0.1.5:9187",namespace="production",datid="16384",datname="conea_production"} 200
pg_stat_database_tup_deleted{job="postgres-exporter",instance="10.0.1.5:9187",namespace="production",datid="16384",datname="conea_production"} 10
pg_stat_database_deadlocks{job="postgres-exporter",instance="10.0.1.5:9187",namespace="production",datid="16384",datname="conea_production"} 0
pg_stat_database_temp_files{job="postgres-exporter",instance="10.0.1.5:9187",namespace="production",datid="16384",datname="conea_production"} 0
pg_stat_database_temp_bytes{job="postgres-exporter",instance="10.0.1.5:9187",namespace="production",datid="16384",datname="conea_production"} 0
pg_stat_database_conflicts{job="postgres-exporter",instance="10.0.1.5:9187",namespace="production",datid="16384",datname="conea_production"} 0
pg_database_size_bytes{job="postgres-exporter",instance="10.0.1.5:9187",namespace="production",datname="conea_production"} 5.4e+09
pg_locks_count{job="postgres-exporter",instance="10.0.1.5:9187",namespace="production",datname="conea_production",mode="accessexclusivelock"} 0
pg_locks_count{job="postgres-exporter",instance="10.0.1.5:9187",namespace="production",datname="conea_production",mode="rowexclusivelock"} 4
pg_replication_lag_seconds{job="postgres-exporter",instance="10.0.1.5:9187",namespace="production"} 0
pg_replication_is_replica{job="postgres-exporter",instance="10.0.1.5:9187",namespace="production"} 0
# redis_exporter
redis_up{job="redis-exporter",instance="10.0.2.5:9121",namespace="production"} 1
redis_memory_used_bytes{job="redis-exporter",instance="10.0.2.5:9121",namespace="production"} 4e+08
redis_memory_max_bytes{job="redis-exporter",instance="10.0.2.5:9121",namespace="production"} 1e+09
redis_connected_clients{job="redis-exporter",instance="10.0.2.5:9121",namespace="production"} 25
redis_blocked_clients{job="redis-exporter",instance="10.0.2.5:9121",namespace="production"} 0
redis_rejected_connections_total{job="redis-exporter",instance="10.0.2.5:9121",namespace="production"} 0
redis_connections_received_total{job="redis-exporter",instance="10.0.2.5:9121",namespace="production"} 900
redis_commands_processed_total{job="redis-exporter",instance="10.0.2.5:9121",namespace="production"} 123456
redis_keyspace_hits_total{job="redis-exporter",instance="10.0.2.5:9121",namespace="production"} 1000
redis_keyspace_misses_total{job="redis-exporter",instance="10.0.2.5:9121",namespace="production"} 50
redis_evicted_keys_total{job="redis-exporter",instance="10.0.2.5:9121",namespace="production"} 0
redis_expired_keys_total{job="redis-exporter",instance="10.0.2.5:9121",namespace="production"} 7
redis_db_keys{job="redis-exporter",instance="10.0.2.5:9121",namespace="production",db="db0"} 1500
# cAdvisor (kubelet /metrics/cadvisor)
container_cpu_usage_seconds_total{job="kubelet",instance="10.0.0.9:10250",namespace="production",pod="conea-api-7d9b8c6f5-xvn4m",container="api",id="/kubepods/x",image="conea/api:1.4",cpu="total"} 1234.5
container_cpu_cfs_periods_total{job="kubelet",instance="10.0.0.9:10250",namespace="production",pod="conea-api-7d9b8c6f5-xvn4m",container="api",id="/kubepods/x",image="conea/api:1.4"} 50000
container_cpu_cfs_throttled_periods_total{job="kubelet",instance="10.0.0.9:10250",namespace="production",pod="conea-api-7d9b8c6f5-xvn4m",container="api",id="/kubepods/x",image="conea/api:1.4"} 120
container_memory_working_set_bytes{job="kubelet",instance="10.0.0.9:10250",namespace="production",pod="conea-api-7d9b8c6f5-xvn4m",container="api",id="/kubepods/x",image="conea/api:1.4"} 1.2e+09
container_network_receive_bytes_total{job="kubelet",instance="10.0.0.9:10250",namespace="production",pod="conea-api-7d9b8c6f5-xvn4m",interface="eth0",id="/kubepods/x"} 9.9e+08
container_network_transmit_bytes_total{job="kubelet",instance="10.0.0.9:10250",namespace="production",pod="conea-api-7d9b8c6f5-xvn4m",interface="eth0",id="/kubepods/x"} 7.7e+08
# kube-state-metrics v2
kube_pod_info{job="kube-state-metrics",instance="10.0.0.8:8080",namespace="production",pod="conea-api-7d9b8c6f5-xvn4m",node="n1",pod_ip="10.1.0.5",uid="u1",created_by_kind="ReplicaSet",created_by_name="conea-api-7d9b8c6f5"} 1
kube_pod_owner{job="kube-state-metrics",instance="10.0.0.8:8080",namespace="production",pod="conea-api-7d9b8c6f5-xvn4m",owner_kind="ReplicaSet",owner_name="conea-api-7d9b8c6f5",owner_is_controller="true",uid="u1"} 1
kube_replicaset_owner{job="kube-state-metrics",instance="10.0.0.8:8080",namespace="production",replicaset="conea-api-7d9b8c6f5",owner_kind="Deployment",owner_name="conea-api",owner_is_controller="true"} 1
kube_pod_status_ready{job="kube-state-metrics",instance="10.0.0.8:8080",namespace="production",pod="conea-api-7d9b8c6f5-xvn4m",condition="true",uid="u1"} 1
kube_pod_status_phase{job="kube-state-metrics",instance="10.0.0.8:8080",namespace="production",pod="conea-api-7d9b8c6f5-xvn4m",phase="Running",uid="u1"} 1
kube_pod_container_status_restarts_total{job="kube-state-metrics",instance="10.0.0.8:8080",namespace="production",pod="conea-api-7d9b8c6f5-xvn4m",container="api",uid="u1"} 2
kube_pod_container_resource_limits{job="kube-state-metrics",instance="10.0.0.8:8080",namespace="production",pod="conea-api-7d9b8c6f5-xvn4m",container="api",node="n1",resource="cpu",unit="core",uid="u1"} 4
kube_pod_container_resource_limits{job="kube-state-metrics",instance="10.0.0.8:8080",namespace="production",pod="conea-api-7d9b8c6f5-xvn4m",container="api",node="n1",resource="memory",unit="byte",uid="u1"} 4.294967296e+09
kube_pod_container_resource_requests{job="kube-state-metrics",instance="10.0.0.8:8080",namespace="production",pod="conea-api-7d9b8c6f5-xvn4m",container="api",node="n1",resource="cpu",unit="core",uid="u1"} 1
kube_deployment_spec_replicas{job="kube-state-metrics",instance="10.0.0.8:8080",namespace="production",deployment="conea-api"} 5
kube_deployment_status_replicas_available{job="kube-state-metrics",instance="10.0.0.8:8080",namespace="production",deployment="conea-api"} 5
kube_horizontalpodautoscaler_spec_min_replicas{job="kube-state-metrics",instance="10.0.0.8:8080",namespace="production",horizontalpodautoscaler="conea-api"} 5
kube_horizontalpodautoscaler_spec_max_replicas{job="kube-state-metrics",instance="10.0.0.8:8080",namespace="production",horizontalpodautoscaler="conea-api"} 50
kube_horizontalpodautoscaler_status_current_replicas{job="kube-state-metrics",instance="10.0.0.8:8080",namespace="production",horizontalpodautoscaler="conea-api"} 5
# node_exporter
node_cpu_seconds_total{job="node-exporter",instance="10.0.0.9:9100",cpu="0",mode="idle"} 90000
node_cpu_seconds_total{job="node-exporter",instance="10.0.0.9:9100",cpu="0",mode="user"} 8000
node_memory_MemAvailable_bytes{job="node-exporter",instance="10.0.0.9:9100"} 8e+09
node_memory_MemTotal_bytes{job="node-exporter",instance="10.0.0.9:9100"} 1.6e+10
node_network_receive_bytes_total{job="node-exporter",instance="10.0.0.9:9100",device="eth0"} 1e+10
node_network_transmit_bytes_total{job="node-exporter",instance="10.0.0.9:9100",device="eth0"} 8e+09
node_filesystem_avail_bytes{job="node-exporter",instance="10.0.0.9:9100",device="/dev/sda1",fstype="ext4",mountpoint="/"} 5e+10
node_filesystem_size_bytes{job="node-exporter",instance="10.0.0.9:9100",device="/dev/sda1",fstype="ext4",mountpoint="/"} 1e+11
# The API (conea-api): request-duration HISTOGRAM and request counter
http_request_duration_seconds_bucket{job="conea-api",instance="10.1.0.5:8000",namespace="production",service="conea-api",pod="conea-api-7d9b8c6f5-xvn4m",handler="/v1/orders",method="GET",le="0.1"} 800
http_request_duration_seconds_bucket{job="conea-api",instance="10.1.0.5:8000",namespace="production",service="conea-api",pod="conea-api-7d9b8c6f5-xvn4m",handler="/v1/orders",method="GET",le="0.5"} 990
http_request_duration_seconds_bucket{job="conea-api",instance="10.1.0.5:8000",namespace="production",service="conea-api",pod="conea-api-7d9b8c6f5-xvn4m",handler="/v1/orders",method="GET",le="+Inf"} 1000
http_request_duration_seconds_sum{job="conea-api",instance="10.1.0.5:8000",namespace="production",service="conea-api",pod="conea-api-7d9b8c6f5-xvn4m",handler="/v1/orders",method="GET"} 120
http_request_duration_seconds_count{job="conea-api",instance="10.1.0.5:8000",namespace="production",service="conea-api",pod="conea-api-7d9b8c6f5-xvn4m",handler="/v1/orders",method="GET"} 1000
http_requests_total{job="conea-api",instance="10.1.0.5:8000",namespace="production",service="conea-api",pod="conea-api-7d9b8c6f5-xvn4m",handler="/v1/orders",method="GET",status="200"} 980
http_requests_total{job="conea-api",instance="10.1.0.5:8000",namespace="production",service="conea-api",pod="conea-api-7d9b8c6f5-xvn4m",handler="/v1/orders",method="POST",status="201"} 60
http_requests_total{job="conea-api",instance="10.1.0.5:8000",namespace="production",service="conea-api",pod="conea-api-7d9b8c6f5-xvn4m",handler="/v1/orders",method="POST",status="401"} 3
http_requests_total{job="conea-api",instance="10.1.0.5:8000",namespace="production",service="conea-api",pod="conea-api-7d9b8c6f5-xvn4m",handler="/v1/orders",method="GET",status="503"} 2
"""

_SERIES = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", re.MULTILINE)


def external_names() -> set[str]:
    """Every metric name in the sample exposition of the exporters."""
    return set(_SERIES.findall(EXTERNAL_EXPOSITION))


def service_metrics() -> metrics.Metrics:
    """The service's metrics with one child per labelled metric, as a running service
    that has done a bit of everything would expose them."""
    m = metrics.Metrics(client_registry.CollectorRegistry())
    m.build_info.info({"version": "0.1.0"})
    m.webhooks.labels(outcome="accepted").inc(5)
    m.webhooks.labels(outcome="unauthorized").inc()
    m.alerts_received.labels(status="firing", repeat="false").inc(3)
    m.webhook_duration.observe(0.004)
    m.store_errors.labels(operation="commit").inc(0)
    m.config_reload_ok.set(1)
    m.config_reload_time.set(1.7e9)
    m.policies_loaded.set(7)
    m.paused.set(0)
    m.breaker_open.set(0)
    m.breaker_notifications.labels(outcome="sent").inc(0)
    m.approvals.labels(policy="scale-out-on-cpu", outcome="requested").inc(0)
    m.decisions.labels(policy="scale-out-on-cpu", outcome="execute").inc()
    m.decisions.labels(policy="scale-out-on-cpu", outcome="coalesced").inc(4)
    m.skips.labels(policy="scale-out-on-cpu", guardrail="budget").inc()
    m.executions.labels(
        policy="scale-out-on-cpu", action="kubernetes.scale", outcome="succeeded"
    ).inc()
    m.target_remediations.labels(
        policy="scale-out-on-cpu", target="Deployment/production/conea-api"
    ).inc()
    m.execution_duration.labels(action="kubernetes.scale").observe(0.2)
    m.verifications.labels(policy="scale-out-on-cpu", result="recovered").inc()
    m.escalations.labels(policy="scale-out-on-cpu").inc(0)
    m.reverts.labels(
        policy="scale-out-on-cpu", action="kubernetes.scale", outcome="succeeded"
    ).inc()
    m.time_to_recover.labels(policy="scale-out-on-cpu").observe(240)
    m.diagnostics.labels(kind="kubernetes.pods", outcome="ok").inc(2)
    m.diagnostic_seconds.labels(kind="kubernetes.pods").observe(0.08)
    m.executions_in_flight.set(0)
    m.backlog_notifications.set(3)
    m.backlog_alerts.set(30)
    m.decision_batches.inc(2)
    m.decision_batch_seconds.observe(0.04)
    m.webhook_held.observe(0.2)
    m.job_last_run.labels(name="vacuum-analyze").set(1.7e9)
    m.job_last_success.labels(name="vacuum-analyze").set(1)
    m.job_duration.labels(name="vacuum-analyze").set(12)
    m.probes.labels(module="http_2xx", result="success").inc(10)
    m.probes_in_flight.set(0)
    return m


def service_exposition() -> str:
    return exposition.generate_latest(service_metrics().registry).decode()


def service_names() -> set[str]:
    """Every sample name the service exposes (``_total``, ``_bucket``, ``_info``...)."""
    names = {
        sample.name for family in service_metrics().registry.collect() for sample in family.samples
    }
    return {name for name in names if not name.endswith("_created")}


def known_names() -> set[str]:
    return external_names() | service_names()
