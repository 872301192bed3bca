# ruff: noqa: E501 - PromQL stays on one line per query, as it is read in Grafana
"""The operations manual's Database dashboard: PostgreSQL (postgres_exporter) connections,
query performance, locks and replication lag, and Redis (redis_exporter)."""

from __future__ import annotations

from typing import Any

from scripts import dashboard_kit as kit
from scripts.dashboard_kit import Query

RATE = "$__rate_interval"
PG = 'namespace=~"$namespace", job=~"$job", instance=~"$instance"'
REDIS = 'namespace=~"$namespace"'


def database() -> dict[str, Any]:
    return kit.dashboard(
        "conea-database",
        "Conea / Database",
        "PostgreSQL (postgres_exporter): connections, query performance, locks and "
        "replication lag; Redis (redis_exporter) below.",
        [
            kit.query_variable("namespace", "Namespace", "label_values(pg_up, namespace)"),
            kit.query_variable("job", "Job", 'label_values(pg_up{namespace=~"$namespace"}, job)'),
            kit.query_variable(
                "instance",
                "Instance",
                'label_values(pg_up{namespace=~"$namespace", job=~"$job"}, instance)',
            ),
        ],
        [
            kit.Row(
                "PostgreSQL",
                [
                    kit.stat(
                        "Up",
                        Query(f"min(pg_up{{{PG}}})"),
                        unit="none",
                        mappings={"0": ("DOWN", "red"), "1": ("UP", "green")},
                        description="0 when postgres_exporter cannot connect.",
                    ),
                    kit.stat(
                        "Connections used",
                        Query(
                            f"sum(pg_stat_activity_count{{{PG}}}) / sum(pg_settings_max_connections{{{PG}}})"
                        ),
                        unit="percentunit",
                        thresholds=kit.traffic_light(0.6, 0.8),
                        description="Share of max_connections in use; the alert fires over 80%.",
                    ),
                    kit.stat(
                        "Oldest idle transaction",
                        Query(
                            f'max(pg_stat_activity_max_tx_duration{{{PG}, state="idle in transaction"}})'
                        ),
                        unit="s",
                        thresholds=kit.traffic_light(60, 600),
                        description="Sessions idle in transaction over 10 minutes are terminated by policy.",
                    ),
                    kit.stat(
                        "Replication lag",
                        Query(f"max(pg_replication_lag_seconds{{{PG}}})"),
                        unit="s",
                        thresholds=kit.traffic_light(5, 30),
                        description="Largest lag of a replica; 0 on a primary.",
                    ),
                ],
            ),
            kit.Row(
                "Connections",
                [
                    kit.timeseries(
                        "Connections by state",
                        [
                            Query(f"sum by (state) (pg_stat_activity_count{{{PG}}})", "{{state}}"),
                            Query(f"max(pg_settings_max_connections{{{PG}}})", "max_connections"),
                        ],
                        unit="short",
                        description="From pg_stat_activity; the line is max_connections.",
                    ),
                    kit.timeseries(
                        "Longest transaction by state",
                        [
                            Query(
                                f"max by (state) (pg_stat_activity_max_tx_duration{{{PG}}})",
                                "{{state}}",
                            )
                        ],
                        unit="s",
                        thresholds=[(None, "green"), (600, "red")],
                        description="Age of the oldest transaction in each state.",
                    ),
                ],
            ),
            kit.Row(
                "Query performance",
                [
                    kit.timeseries(
                        "Transactions / s",
                        [
                            Query(
                                f"sum by (datname) (rate(pg_stat_database_xact_commit{{{PG}}}[{RATE}]))",
                                "{{datname}} commit",
                            ),
                            Query(
                                f"sum by (datname) (rate(pg_stat_database_xact_rollback{{{PG}}}[{RATE}]))",
                                "{{datname}} rollback",
                            ),
                        ],
                        unit="ops",
                        description="Commits and rollbacks.",
                    ),
                    kit.timeseries(
                        "Buffer cache hit ratio",
                        [
                            Query(
                                f"sum by (datname) (rate(pg_stat_database_blks_hit{{{PG}}}[{RATE}]))"
                                f" / (sum by (datname) (rate(pg_stat_database_blks_hit{{{PG}}}[{RATE}]))"
                                f" + sum by (datname) (rate(pg_stat_database_blks_read{{{PG}}}[{RATE}])))",
                                "{{datname}}",
                            )
                        ],
                        unit="percentunit",
                        min_value=None,
                        max_value=1,
                        description="Blocks found in shared buffers; below ~99% reads go to disk.",
                    ),
                    kit.timeseries(
                        "Rows / s",
                        [
                            Query(
                                f"sum(rate(pg_stat_database_tup_fetched{{{PG}}}[{RATE}]))",
                                "fetched",
                            ),
                            Query(
                                f"sum(rate(pg_stat_database_tup_inserted{{{PG}}}[{RATE}]))",
                                "inserted",
                            ),
                            Query(
                                f"sum(rate(pg_stat_database_tup_updated{{{PG}}}[{RATE}]))",
                                "updated",
                            ),
                            Query(
                                f"sum(rate(pg_stat_database_tup_deleted{{{PG}}}[{RATE}]))",
                                "deleted",
                            ),
                        ],
                        unit="rowsps",
                        description="Row work done by queries.",
                    ),
                    kit.timeseries(
                        "Deadlocks and temp files",
                        [
                            Query(
                                f"sum by (datname) (increase(pg_stat_database_deadlocks{{{PG}}}[{RATE}]))",
                                "{{datname}} deadlocks",
                            ),
                            Query(
                                f"sum by (datname) (increase(pg_stat_database_temp_files{{{PG}}}[{RATE}]))",
                                "{{datname}} temp files",
                            ),
                        ],
                        unit="short",
                        description="Deadlocks, and sorts/hashes that spilled to disk.",
                    ),
                ],
            ),
            kit.Row(
                "Locks, size and replication",
                [
                    kit.timeseries(
                        "Locks by mode",
                        [Query(f"sum by (mode) (pg_locks_count{{{PG}}})", "{{mode}}")],
                        unit="short",
                        description="PostgresLockContention fires on exclusive locks held 5 minutes.",
                    ),
                    kit.timeseries(
                        "Replication lag",
                        [Query(f"pg_replication_lag_seconds{{{PG}}}", "{{instance}}")],
                        unit="s",
                        thresholds=[(None, "green"), (30, "red")],
                        description="Replay delay of each replica.",
                    ),
                    kit.timeseries(
                        "Database size",
                        [
                            Query(
                                f"sum by (datname) (pg_database_size_bytes{{{PG}}})", "{{datname}}"
                            )
                        ],
                        unit="bytes",
                        description="On-disk size of each database.",
                    ),
                ],
            ),
            kit.Row(
                "Redis",
                [
                    kit.stat(
                        "Redis up",
                        Query(f"min(redis_up{{{REDIS}}})"),
                        unit="none",
                        mappings={"0": ("DOWN", "red"), "1": ("UP", "green")},
                        description="0 when redis_exporter cannot reach Redis.",
                    ),
                    kit.stat(
                        "Memory / maxmemory",
                        Query(
                            f"max(redis_memory_used_bytes{{{REDIS}}} / (redis_memory_max_bytes{{{REDIS}}} > 0))"
                        ),
                        unit="percentunit",
                        thresholds=kit.traffic_light(0.8, 0.9),
                        description="Empty when maxmemory is not set.",
                    ),
                    kit.timeseries(
                        "Clients",
                        [
                            Query(
                                f"sum by (instance) (redis_connected_clients{{{REDIS}}})",
                                "{{instance}}",
                            ),
                            Query(
                                f"sum by (instance) (increase(redis_rejected_connections_total{{{REDIS}}}[{RATE}]))",
                                "{{instance}} rejected",
                            ),
                        ],
                        unit="short",
                        span=12,
                        description="Connected clients and rejected connections.",
                    ),
                    kit.timeseries(
                        "Commands / s",
                        [
                            Query(
                                f"sum by (instance) (rate(redis_commands_processed_total{{{REDIS}}}[{RATE}]))",
                                "{{instance}} commands/s",
                            )
                        ],
                        unit="ops",
                        span=12,
                        description="Commands processed per second.",
                    ),
                    kit.timeseries(
                        "Keyspace hit ratio",
                        [
                            Query(
                                f"sum by (instance) (rate(redis_keyspace_hits_total{{{REDIS}}}[{RATE}]))"
                                f" / (sum by (instance) (rate(redis_keyspace_hits_total{{{REDIS}}}[{RATE}]))"
                                f" + sum by (instance) (rate(redis_keyspace_misses_total{{{REDIS}}}[{RATE}])))",
                                "{{instance}}",
                            )
                        ],
                        unit="percentunit",
                        max_value=1,
                        description="Lookups that found their key.",
                    ),
                ],
            ),
        ],
    )
