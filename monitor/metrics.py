"""The service's own metrics (``/metrics``), one set per app instance.

Every name carries the ``conea_monitor_`` prefix and its unit or ``_total``. Probe
output never goes here: each probe builds its own registry (see ``monitor.probes``).
The alert rules in ``rules/`` and the dashboards in ``dashboards/`` use these names.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

PREFIX = "conea_monitor"

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# A batch of decisions: from a handful of alerts on an idle service to a storm's backlog.
BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# A diagnostic: a read of the API or the database, bounded by its timeout (10 s unless set).
DIAGNOSTIC_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
RECOVERY_BUCKETS = (10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
# Label values taken from alerts are bounded: targets beyond this many are counted as OTHER.
MAX_TARGETS = 200
OTHER = "other"


class Metrics:
    """Counters, gauges and histograms of one running service."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.build_info = Info(f"{PREFIX}_build", "Version of conea-monitor.", registry=r)
        # Webhook receiver.
        self.webhooks = Counter(
            f"{PREFIX}_webhooks_total",
            "Alertmanager webhook requests by outcome "
            "(accepted, unauthorized, invalid, too_large, unsupported_media_type, error).",
            ["outcome"],
            registry=r,
        )
        self.alerts_received = Counter(
            f"{PREFIX}_alerts_received_total",
            "Alerts received in webhooks by status; repeat=true for a re-delivery.",
            ["status", "repeat"],
            registry=r,
        )
        self.webhook_duration = Histogram(
            f"{PREFIX}_webhook_duration_seconds",
            "Time from request received to the notification committed and answered.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.store_errors = Counter(
            f"{PREFIX}_store_errors_total",
            "Store operations that failed, by operation.",
            ["operation"],
            registry=r,
        )
        # Configuration.
        self.config_reload_ok = Gauge(
            f"{PREFIX}_config_last_reload_successful",
            "1 if the last load of policies and config succeeded, 0 if it failed.",
            registry=r,
        )
        self.config_reload_time = Gauge(
            f"{PREFIX}_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful load of policies and config.",
            registry=r,
        )
        self.policies_loaded = Gauge(
            f"{PREFIX}_policies_loaded", "Remediation policies currently in force.", registry=r
        )
        # Engine.
        self.paused = Gauge(
            f"{PREFIX}_paused", "1 while automation is paused (kill switch).", registry=r
        )
        self.breaker_open = Gauge(
            f"{PREFIX}_breaker_open",
            "1 while the blast-radius breaker (automation.max_actions) is open: decisions "
            "that would act are skipped.",
            registry=r,
        )
        self.breaker_notifications = Counter(
            f"{PREFIX}_breaker_notifications_total",
            "Notifications that the breaker opened, by outcome (sent, failed).",
            ["outcome"],
            registry=r,
        )
        self.approvals = Counter(
            f"{PREFIX}_approvals_total",
            "Approval requests and their answers, by policy and outcome (requested, "
            "approved, rejected, expired).",
            ["policy", "outcome"],
            registry=r,
        )
        self.decisions = Counter(
            f"{PREFIX}_decisions_total",
            "Engine decisions per alert and policy by outcome (execute, rehearse, defer, skip, "
            "coalesced: recorded against an execution already in flight or cooling down "
            "on the same target).",
            ["policy", "outcome"],
            registry=r,
        )
        self.skips = Counter(
            f"{PREFIX}_skips_total",
            "Remediations not run, by policy and the guardrail that stopped them "
            "(paused, scope, cooldown, budget, concurrency, stale, for_at_least, "
            "time_interval, approval, no_step).",
            ["policy", "guardrail"],
            registry=r,
        )
        self.executions = Counter(
            f"{PREFIX}_executions_total",
            "Action executions by policy, action and outcome (succeeded, failed, rehearsed).",
            ["policy", "action", "outcome"],
            registry=r,
        )
        self.target_remediations = Counter(
            f"{PREFIX}_target_remediations_total",
            "Remediation steps applied successfully, per policy and target "
            f'(kind/namespace/name; after {MAX_TARGETS} distinct targets, target="{OTHER}").',
            ["policy", "target"],
            registry=r,
        )
        self._targets: set[str] = set()
        self.execution_duration = Histogram(
            f"{PREFIX}_execution_duration_seconds",
            "Time to plan and apply one action.",
            ["action"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.verifications = Counter(
            f"{PREFIX}_verifications_total",
            "Verification results by policy (recovered, not_recovered, error).",
            ["policy", "result"],
            registry=r,
        )
        self.escalations = Counter(
            f"{PREFIX}_escalations_total",
            "Moves to the next step of a policy's ladder, by policy.",
            ["policy"],
            registry=r,
        )
        self.reverts = Counter(
            f"{PREFIX}_reverts_total",
            "Reverts by policy, action and outcome (succeeded, failed).",
            ["policy", "action", "outcome"],
            registry=r,
        )
        self.diagnostics = Counter(
            f"{PREFIX}_diagnostics_total",
            "Diagnostics run (a policy's diagnose:), by kind (the diagnostic's action) and "
            "outcome (ok, error, timeout).",
            ["kind", "outcome"],
            registry=r,
        )
        self.diagnostic_seconds = Histogram(
            f"{PREFIX}_diagnostic_seconds",
            "Time one diagnostic took, by kind (the diagnostic's action), its store write "
            "excluded.",
            ["kind"],
            buckets=DIAGNOSTIC_BUCKETS,
            registry=r,
        )
        self.time_to_recover = Histogram(
            f"{PREFIX}_time_to_recover_seconds",
            "From the alert's startsAt to a verification that found it recovered.",
            ["policy"],
            buckets=RECOVERY_BUCKETS,
            registry=r,
        )
        self.notifications_poisoned = Counter(
            f"{PREFIX}_notifications_poisoned_total",
            "Notifications whose processing failed on every attempt, parked and no longer "
            "retried (see the audit trail, kind=poison).",
            registry=r,
        )
        self.executions_in_flight = Gauge(
            f"{PREFIX}_executions_in_flight", "Executions running now.", registry=r
        )
        # The backlog: what the webhook stored and the engine has not decided yet.
        self.backlog_notifications = Gauge(
            f"{PREFIX}_backlog_notifications",
            "Notifications stored but not yet decided.",
            registry=r,
        )
        self.backlog_alerts = Gauge(
            f"{PREFIX}_backlog_alerts",
            "Alerts in the notifications stored but not yet decided.",
            registry=r,
        )
        self.webhook_held = Histogram(
            f"{PREFIX}_webhook_held_seconds",
            "Time webhook answers were held for backpressure (the backlog was over "
            "webhook.backpressure_alerts); only held answers are observed.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.decision_batches = Counter(
            f"{PREFIX}_decision_batches_total",
            "Batches of notifications the engine took from the store and decided.",
            registry=r,
        )
        self.decision_batch_seconds = Histogram(
            f"{PREFIX}_decision_batch_seconds",
            "Time to decide one batch, from taking it from the store to its commit.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        # Scheduled jobs.
        self.job_last_run = Gauge(
            f"{PREFIX}_job_last_run_timestamp_seconds",
            "Unix time a scheduled job last ran.",
            ["name"],
            registry=r,
        )
        self.job_last_success = Gauge(
            f"{PREFIX}_job_last_success", "1 if the job's last run succeeded.", ["name"], registry=r
        )
        self.job_duration = Gauge(
            f"{PREFIX}_job_last_duration_seconds",
            "Duration of a scheduled job's last run.",
            ["name"],
            registry=r,
        )
        # Probes (the service's view of them; probe results go to /probe).
        self.probes = Counter(
            f"{PREFIX}_probes_total",
            "Probes served on /probe by module and result (success, failure, rejected).",
            ["module", "result"],
            registry=r,
        )
        self.probes_in_flight = Gauge(
            f"{PREFIX}_probes_in_flight", "Probes running now.", registry=r
        )

    def target_remediated(self, policy: str, target: str) -> None:
        """Count a remediation applied to ``target``: a bounded set of label values."""
        if target not in self._targets:
            if len(self._targets) >= MAX_TARGETS:
                target = OTHER
            else:
                self._targets.add(target)
        self.target_remediations.labels(policy, target).inc()
