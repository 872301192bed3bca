"""Replay speed: a week of ALERTS history for 1,000 alerts and 50 policies.

The history is generated (seeded), backfilled with promtool into a real Prometheus
started here (tests/support/alerts_history.py), then replayed as the command does, timed
from the first query to the report: reading the episodes from Prometheus (range queries
in day chunks) and simulating the policies. The target is under 10 s on the 2-core
machine. Prints the query time, the simulation time, episodes and decisions.

    .venv/bin/python -m bench.replay [--alerts 1000] [--policies 50] [--days 7] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor import policy, replay
from monitor import scope as scope_mod
from monitor.actions import default_registry
from tests.support.alerts_history import Series, prometheus_with

STEP = timedelta(minutes=1)
START = datetime(2026, 3, 2, tzinfo=UTC)
TARGET_SECONDS = 10.0


def history(alerts: int, policies: int, days: int, seed: int = 15) -> list[Series]:
    """``alerts`` alerts over ``policies`` alertnames, each firing a few times a day for
    5 minutes to 3 hours (about a tenth of the time), one sample a minute."""
    rng = random.Random(seed)
    end = START + timedelta(days=days)
    found: list[Series] = []
    for i in range(alerts):
        labels = {
            "alertname": f"Bench{i % policies:02d}",
            "namespace": f"team-{i % 7}",
            "deployment": f"app-{i // policies}",
        }
        times: list[datetime] = []
        at = START + timedelta(minutes=rng.randrange(0, 24 * 60))
        while at < end:
            length = rng.randrange(5, 180)
            times += [at + k * STEP for k in range(length) if at + k * STEP < end]
            at += timedelta(minutes=length + rng.randrange(3, 30 * 60))
        found.append((labels, times))
    return found


def policy_file(policies: int) -> str:
    """``policies`` policies, one per alertname, with every guardrail in use somewhere."""
    lines = [
        "time_intervals:",
        "  - name: daytime",
        "    time_intervals: [{times: [{start_time: '07:00', end_time: '22:00'}]}]",
        "policies:",
    ]
    for n in range(policies):
        steps = "[[{action: log}]" + ", [{action: log}]" * (n % 3) + "]"
        lines += [
            f"  - name: bench-{n:02d}",
            f"    match: ['alertname=\"Bench{n:02d}\"']",
            "    target: {kind: Deployment, namespace: '{{ labels.namespace }}', "
            "name: '{{ labels.deployment }}'}",
            f"    steps: {steps}",
            f"    for_at_least: {(n % 4) * 5}m",
            f"    cooldown: {5 + n % 6 * 5}m",
            f"    budget: {{attempts: {1 + n % 3}, window: 1h}}",
            f"    revert: {{enabled: {'true' if n % 2 else 'false'}, after: 10m}}",
        ]
        if n % 5 == 0:
            lines.append("    active_time_intervals: [daytime]")
    return "\n".join(lines) + "\n"


def run(alerts: int, policies: int, days: int) -> dict[str, Any]:
    series = history(alerts, policies, days)
    samples = sum(len(list(times)) for _, times in series)
    with tempfile.TemporaryDirectory(prefix="conea-replay-bench-") as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(policy_file(policies))
        loaded = policy.load([path], default_registry(), strict_actions=True)
        t0 = time.perf_counter()
        with prometheus_with(series) as prom:
            ready = time.perf_counter() - t0
            until = START + timedelta(days=days)
            t1 = time.perf_counter()
            episodes = replay.from_prometheus(prom.url, START, until, STEP)
            t2 = time.perf_counter()
            outcome = replay.simulate(
                loaded, episodes, since=START, until=until, scope=scope_mod.Scope.of()
            )
            report = replay.build(outcome, step=STEP, source=f"Prometheus {prom.url}")
            t3 = time.perf_counter()
    total = t3 - t1
    return {
        "alerts": alerts,
        "policies": policies,
        "days": days,
        "samples": samples,
        "backfill_and_start_seconds": round(ready, 2),
        "query_seconds": round(t2 - t1, 3),
        "simulation_seconds": round(t3 - t2, 3),
        "total_seconds": round(total, 3),
        "target_seconds": TARGET_SECONDS,
        "within_target": total < TARGET_SECONDS,
        "episodes": report["episodes"],
        "decisions": report["decisions"],
        "executions": sum(e["executions"] for e in report["policies"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--policies", type=int, default=50)
    parser.add_argument("--days", type=int, default=7, choices=range(1, 32), metavar="1..31")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.alerts, args.policies, args.days)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:28} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
