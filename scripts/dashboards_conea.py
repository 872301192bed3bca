# ruff: noqa: E501 - PromQL stays on one line per query, as it is read in Grafana
"""conea-monitor's own dashboards: Probes (blackbox-style probe results) and Remediation
activity (the service's ``conea_monitor_*`` metrics)."""

from __future__ import annotations

from typing import Any

from scripts import dashboard_kit as kit
from scripts.dashboard_kit import Query

RATE = "$__rate_interval"
PROBE = 'namespace=~"$namespace", job=~"$job", instance=~"$instance"'
SELF = 'namespace=~"$namespace", job=~"$job"'
POLICY = f'{SELF}, policy=~"$policy"'
UP_DOWN = {"0": ("DOWN", "red"), "1": ("UP", "green")}


def probes() -> dict[str, Any]:
    return kit.dashboard(
        "conea-probes",
        "Conea / Probes",
        "Results of the blackbox-style probes (conea-monitor /probe or blackbox_exporter): "
        "success, duration by phase, status codes and certificate expiry.",
        [
            kit.query_variable("namespace", "Namespace", "label_values(probe_success, namespace)"),
            kit.query_variable(
                "job", "Job", 'label_values(probe_success{namespace=~"$namespace"}, job)'
            ),
            kit.query_variable(
                "instance",
                "Target",
                'label_values(probe_success{namespace=~"$namespace", job=~"$job"}, instance)',
            ),
        ],
        [
            kit.Row(
                "Status",
                [
                    kit.stat(
                        "Targets up",
                        Query(f"sum(probe_success{{{PROBE}}})"),
                        unit="short",
                        description="Targets whose last probe succeeded.",
                    ),
                    kit.stat(
                        "Targets down",
                        Query(f"count(probe_success{{{PROBE}}} == 0) or vector(0)"),
                        unit="short",
                        thresholds=kit.traffic_light(1, 1),
                        description="ProbeTargetDown fires after 2 minutes down.",
                    ),
                    kit.stat(
                        "Availability (range)",
                        Query(f"avg(avg_over_time(probe_success{{{PROBE}}}[$__range]))"),
                        unit="percentunit",
                        thresholds=[(None, "red"), (0.99, "orange"), (0.999, "green")],
                        description="Share of successful probes over the dashboard's time range.",
                    ),
                    kit.stat(
                        "Earliest certificate expiry",
                        Query(f"min(probe_ssl_earliest_cert_expiry{{{PROBE}}} - time())"),
                        unit="s",
                        thresholds=[(None, "red"), (3 * 86400, "orange"), (14 * 86400, "green")],
                        description="Warning under 14 days, critical under 3.",
                    ),
                    kit.timeseries(
                        "Probe success by target",
                        [Query(f"probe_success{{{PROBE}}}", "{{instance}}")],
                        unit="none",
                        max_value=1,
                        description="1 = the probe succeeded.",
                    ),
                ],
            ),
            kit.Row(
                "Timing",
                [
                    kit.timeseries(
                        "Probe duration",
                        [Query(f"probe_duration_seconds{{{PROBE}}}", "{{instance}}")],
                        unit="s",
                        thresholds=[(None, "green"), (1, "red")],
                        description="Whole probe; ProbeSlow fires over 1s on average for 5 minutes.",
                    ),
                    kit.timeseries(
                        "HTTP duration by phase",
                        [
                            Query(
                                f"sum by (instance, phase) (probe_http_duration_seconds{{{PROBE}}})",
                                "{{instance}} {{phase}}",
                            )
                        ],
                        unit="s",
                        stack=True,
                        description="resolve, connect, tls, processing, transfer.",
                    ),
                    kit.timeseries(
                        "DNS lookup time",
                        [Query(f"probe_dns_lookup_time_seconds{{{PROBE}}}", "{{instance}}")],
                        unit="s",
                        description="Time to resolve the target's name.",
                    ),
                    kit.timeseries(
                        "HTTP status code",
                        [Query(f"probe_http_status_code{{{PROBE}}}", "{{instance}}")],
                        unit="none",
                        min_value=None,
                        description="Last status code per target (0: no answer).",
                    ),
                ],
            ),
            kit.Row(
                "TLS",
                [
                    kit.table(
                        "Certificate expiry",
                        Query(f"sort((probe_ssl_earliest_cert_expiry{{{PROBE}}} - time()))"),
                        unit="s",
                        description="Time left on the earliest-expiring certificate of each target.",
                    ),
                ],
            ),
            kit.Row(
                "Probes served by conea-monitor",
                [
                    kit.timeseries(
                        "Probes / s by module and result",
                        [
                            Query(
                                f'sum by (module, result) (rate(conea_monitor_probes_total{{namespace=~"$namespace"}}[{RATE}]))',
                                "{{module}} {{result}}",
                            )
                        ],
                        unit="reqps",
                        stack=True,
                        description="success, failure, rejected (bad target or module).",
                    ),
                    kit.timeseries(
                        "Probes in flight",
                        [
                            Query(
                                'sum by (instance) (conea_monitor_probes_in_flight{namespace=~"$namespace"})',
                                "{{instance}}",
                            )
                        ],
                        unit="short",
                        description="Concurrent probes per replica.",
                    ),
                ],
            ),
        ],
    )


def remediation() -> dict[str, Any]:
    def recover(q: str) -> str:
        return (
            f"histogram_quantile({q}, sum by (le) "
            f"(rate(conea_monitor_time_to_recover_seconds_bucket{{{POLICY}}}[1h])))"
        )

    return kit.dashboard(
        "conea-remediation",
        "Conea / Remediation activity",
        "What conea-monitor decided and did: its backlog and breaker, executions by action and "
        "outcome, diagnostics, verifications, skips by guardrail, time to recover, and the "
        "service's own health.",
        [
            kit.query_variable(
                "namespace", "Namespace", 'label_values(up{job=~"conea-monitor.*"}, namespace)'
            ),
            kit.query_variable(
                "job",
                "Job",
                'label_values(up{namespace=~"$namespace", job=~"conea-monitor.*"}, job)',
            ),
            kit.query_variable(
                "policy",
                "Policy",
                "label_values("
                'conea_monitor_decisions_total{namespace=~"$namespace", job=~"$job"}, policy)',
            ),
        ],
        [
            kit.Row(
                "Now",
                [
                    kit.stat(
                        "Automation",
                        Query(f"max(conea_monitor_paused{{{SELF}}})"),
                        unit="none",
                        mappings={"0": ("ACTIVE", "green"), "1": ("PAUSED", "orange")},
                        description="The kill switch (POST /api/v1/pause, /resume).",
                    ),
                    kit.stat(
                        "Config reload",
                        Query(f"min(conea_monitor_config_last_reload_successful{{{SELF}}})"),
                        unit="none",
                        mappings={"0": ("FAILED", "red"), "1": ("OK", "green")},
                        description="0 while the last reload failed and the old config runs.",
                    ),
                    kit.stat(
                        "Policies loaded",
                        Query(f"max(conea_monitor_policies_loaded{{{SELF}}})"),
                        unit="short",
                        description="Remediation policies in force.",
                    ),
                    kit.stat(
                        "Recovered after action (range)",
                        Query(
                            f'sum(increase(conea_monitor_verifications_total{{{POLICY}, result="recovered"}}[$__range]))'
                            f" / sum(increase(conea_monitor_verifications_total{{{POLICY}}}[$__range]))"
                        ),
                        unit="percentunit",
                        thresholds=[(None, "red"), (0.5, "orange"), (0.8, "green")],
                        description="Verifications that found the alert recovered.",
                    ),
                ],
            ),
            kit.Row(
                "Backlog and breaker",
                [
                    kit.stat(
                        "Blast-radius breaker",
                        Query(f"max(conea_monitor_breaker_open{{{SELF}}})"),
                        unit="none",
                        span=4,
                        height=8,
                        thresholds=[(None, "green"), (1, "red")],
                        mappings={"0": ("CLOSED", "green"), "1": ("OPEN", "red")},
                        description="OPEN: automation.max_actions live actions were taken "
                        "within its window; every further decision is skipped (breaker open) "
                        "until it closes or an operator resumes.",
                    ),
                    kit.timeseries(
                        "Backlog",
                        [
                            Query(
                                f"sum(conea_monitor_backlog_alerts{{{SELF}}})",
                                "alerts",
                            ),
                            Query(
                                f"sum(conea_monitor_backlog_notifications{{{SELF}}})",
                                "notifications",
                            ),
                        ],
                        unit="short",
                        span=10,
                        description="Stored by the webhook and not decided yet. After a storm "
                        "it should drain within seconds.",
                    ),
                    kit.timeseries(
                        "Decision rate by outcome",
                        [
                            Query(
                                f"sum by (outcome) (rate(conea_monitor_decisions_total{{{POLICY}}}[{RATE}]))",
                                "{{outcome}}",
                            )
                        ],
                        unit="ops",
                        span=10,
                        stack=True,
                        description="Decisions per second; coalesced: recorded against the "
                        "execution already in flight or cooling down on the same target.",
                    ),
                    kit.timeseries(
                        "Decision batch duration",
                        [
                            Query(
                                "histogram_quantile(0.99, sum by (le) (rate("
                                f"conea_monitor_decision_batch_seconds_bucket{{{SELF}}}[{RATE}])))",
                                "p99",
                            ),
                            Query(
                                "histogram_quantile(0.5, sum by (le) (rate("
                                f"conea_monitor_decision_batch_seconds_bucket{{{SELF}}}[{RATE}])))",
                                "p50",
                            ),
                        ],
                        unit="s",
                        span=12,
                        description="From taking a batch of notifications from the store to "
                        "its commit.",
                    ),
                    kit.timeseries(
                        "Decision batches / s",
                        [
                            Query(
                                f"sum by (instance) (rate(conea_monitor_decision_batches_total{{{SELF}}}[{RATE}]))",
                                "{{instance}}",
                            )
                        ],
                        unit="ops",
                        span=12,
                        description="Batches decided per second, by replica (replicas share "
                        "the store's queue).",
                    ),
                ],
            ),
            kit.Row(
                "Executions",
                [
                    kit.timeseries(
                        "Executions by action and outcome",
                        [
                            Query(
                                f"sum by (action, outcome) (increase(conea_monitor_executions_total{{{POLICY}}}[{RATE}]))",
                                "{{action}} {{outcome}}",
                            )
                        ],
                        unit="short",
                        stack=True,
                        description="succeeded, failed, dry_run.",
                    ),
                    kit.timeseries(
                        "Decisions by outcome",
                        [
                            Query(
                                f"sum by (outcome) (increase(conea_monitor_decisions_total{{{POLICY}}}[{RATE}]))",
                                "{{outcome}}",
                            )
                        ],
                        unit="short",
                        stack=True,
                        description="execute, dry_run, defer, skip, coalesced.",
                    ),
                    kit.timeseries(
                        "Skips by guardrail",
                        [
                            Query(
                                f"sum by (guardrail) (increase(conea_monitor_skips_total{{{POLICY}}}[{RATE}]))",
                                "{{guardrail}}",
                            )
                        ],
                        unit="short",
                        stack=True,
                        description="Why remediations did not run (budget: ConeaMonitorBudgetExhausted).",
                    ),
                    kit.timeseries(
                        "Execution duration p95 by action",
                        [
                            Query(
                                "histogram_quantile(0.95, sum by (action, le) (rate("
                                f"conea_monitor_execution_duration_seconds_bucket{{{SELF}}}[{RATE}])))",
                                "{{action}}",
                            )
                        ],
                        unit="s",
                        description="Time to plan and apply one action.",
                    ),
                ],
            ),
            kit.Row(
                "Diagnostics",
                [
                    kit.timeseries(
                        "Diagnostics by kind and outcome",
                        [
                            Query(
                                f"sum by (kind, outcome) (increase(conea_monitor_diagnostics_total{{{SELF}}}[{RATE}]))",
                                "{{kind}} {{outcome}}",
                            )
                        ],
                        unit="short",
                        stack=True,
                        description="The evidence a policy's diagnose: gathers: ok, error, "
                        "timeout (the diagnostic's timeout; the remediation goes on).",
                    ),
                    kit.timeseries(
                        "Diagnostic duration p95 by kind",
                        [
                            Query(
                                "histogram_quantile(0.95, sum by (kind, le) (rate("
                                f"conea_monitor_diagnostic_seconds_bucket{{{SELF}}}[{RATE}])))",
                                "{{kind}}",
                            )
                        ],
                        unit="s",
                        description="Time one diagnostic took, in the diagnostics' own "
                        "threads. Near its timeout: the API or database it reads is slow.",
                    ),
                ],
            ),
            kit.Row(
                "Outcomes",
                [
                    kit.timeseries(
                        "Verifications by result",
                        [
                            Query(
                                f"sum by (result) (increase(conea_monitor_verifications_total{{{POLICY}}}[{RATE}]))",
                                "{{result}}",
                            )
                        ],
                        unit="short",
                        stack=True,
                        description="recovered, not_recovered (escalates), error.",
                    ),
                    kit.timeseries(
                        "Time to recover",
                        [Query(recover("0.5"), "p50"), Query(recover("0.95"), "p95")],
                        unit="s",
                        description="Alert start to verified recovery, over the last hour.",
                    ),
                    kit.timeseries(
                        "Escalations and reverts",
                        [
                            Query(
                                f"sum by (policy) (increase(conea_monitor_escalations_total{{{POLICY}}}[{RATE}]))",
                                "{{policy}} escalated",
                            ),
                            Query(
                                f"sum by (action, outcome) (increase(conea_monitor_reverts_total{{{POLICY}}}[{RATE}]))",
                                "revert {{action}} {{outcome}}",
                            ),
                        ],
                        unit="short",
                        description="Moves to the next ladder step; undoing temporary changes.",
                    ),
                    kit.table(
                        "Most remediated targets (range)",
                        Query(
                            "sort_desc(topk(10, sum by (policy, target) (increase("
                            f"conea_monitor_target_remediations_total{{{POLICY}}}[$__range]))))"
                        ),
                        unit="short",
                        description="Targets fixed again and again: ConeaMonitorRemediationLoop.",
                    ),
                ],
            ),
            kit.Row(
                "Webhooks and jobs",
                [
                    kit.timeseries(
                        "Webhooks by outcome",
                        [
                            Query(
                                f"sum by (outcome) (rate(conea_monitor_webhooks_total{{{SELF}}}[{RATE}]))",
                                "{{outcome}}",
                            )
                        ],
                        unit="reqps",
                        stack=True,
                        description="Anything but accepted: ConeaMonitorWebhooksRejected.",
                    ),
                    kit.timeseries(
                        "Alerts received by status",
                        [
                            Query(
                                f"sum by (status, repeat) (rate(conea_monitor_alerts_received_total{{{SELF}}}[{RATE}]))",
                                "{{status}} repeat={{repeat}}",
                            )
                        ],
                        unit="reqps",
                        description="Firing and resolved alerts; repeat=true for re-deliveries.",
                    ),
                    kit.timeseries(
                        "Webhook latency p95",
                        [
                            Query(
                                "histogram_quantile(0.95, sum by (le) (rate("
                                f"conea_monitor_webhook_duration_seconds_bucket{{{SELF}}}[{RATE}])))",
                                "p95",
                            )
                        ],
                        unit="s",
                        description="Received to stored and answered.",
                    ),
                    kit.table(
                        "Scheduled jobs",
                        Query(f"max by (name) (conea_monitor_job_last_success{{{SELF}}})"),
                        unit="none",
                        description="1 if the scheduled job's last run succeeded, by job name.",
                    ),
                ],
            ),
        ],
    )
