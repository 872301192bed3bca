"""Decision speed and exactly-once under a storm.

1. One alert decided against 1,000 policies: matching (indexed by alertname), rendering
   the target and every guardrail's verdict, as the engine does it (the store's answers
   for cooldown and budget given in memory). Prints the median and p99 in µs.
2. A storm of 10,000 alerts through the real engine on a SQLite store, every alert
   delivered twice and concurrently: prints alerts/s and checks that no execution key
   was run twice.

    .venv/bin/python -m bench.decide [--policies 1000] [--alerts 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from monitor import policy
from monitor import scope as scope_mod
from monitor.actions import Services, default_registry
from monitor.alerts.context import alert_context
from monitor.alerts.payload import Alert
from monitor.engine import guardrails
from monitor.engine.core import Engine
from monitor.engine.firing import FiringCheck
from monitor.metrics import Metrics
from monitor.settings import AutomationSettings
from monitor.store import database, queries
from monitor.store.facade import Store
from monitor.store.notifications import StoredNotification
from monitor.store.records import TargetHistory
from tests.support.engine import stored


def policies_file(directory: Path, count: int) -> Path:
    items = []
    for i in range(count):
        if i % 10 == 9:  # a tenth name no alertname: they are checked for every alert
            match = ['severity=~"crit.*|high"', f'team="t{i}"', 'namespace!~"kube-.*"']
        else:
            match = [f'alertname="Alert{i % 300}"', 'namespace=~"prod.*|stag.*"', f'team!="x{i}"']
        items.append(
            {
                "name": f"p{i}",
                "match": match,
                "target": {
                    "kind": "Deployment",
                    "namespace": "{{ labels.namespace }}",
                    "name": "{{ labels.deployment | default('api') }}",
                },
                "steps": [[{"action": "log", "with": {"message": "{{ labels.alertname }}"}}]],
                "cooldown": "0s",
                "budget": {"attempts": 1000, "window": "1h"},
            }
        )
    path = directory / "policies.yaml"
    path.write_text(json.dumps({"policies": items}))
    return path


def decide_one(policies: policy.PolicySet, labels: dict[str, str]) -> int:
    alert = Alert.model_validate(
        {
            "status": "firing",
            "labels": labels,
            "annotations": {},
            "startsAt": "2026-11-28T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "",
            "fingerprint": "f1",
        }
    )
    ctx = alert_context(alert)
    now = datetime.now(UTC)
    scope = scope_mod.Scope()
    history = TargetHistory(None, 0)
    decided = 0
    for p in policies.match(labels):
        target = policy.render_target(p, ctx)
        guardrails.decide(
            p,
            target=target,
            starts_at=ctx.starts_at,
            now=now,
            paused=False,
            dry_run=False,
            scope=scope,
            history=history,
        )
        decided += 1
    return decided


def storm(directory: Path, policies: policy.PolicySet, count: int) -> tuple[float, int, int]:
    db = database.connect(f"sqlite:///{directory / 'storm.db'}", sqlite_synchronous="NORMAL")
    database.migrate(db)
    import httpx

    async def run() -> float:
        http = httpx.AsyncClient()
        engine = Engine(
            store=Store(db),
            policies=policies,
            registry=default_registry(),
            services=Services(http=http),
            metrics=Metrics(),
            automation=AutomationSettings(max_concurrent_executions=64),
            firing=FiringCheck(None, None, http),
        )
        alerts = [
            Alert.model_validate(
                {
                    "status": "firing",
                    "labels": {
                        "alertname": f"Alert{i % 300}",
                        "namespace": "production",
                        "team": "t1",
                        "deployment": f"api-{i}",
                    },
                    "annotations": {},
                    "startsAt": "2026-11-28T10:00:00Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "",
                    "fingerprint": f"{i:016x}",
                }
            )
            for i in range(count)
        ]
        # Every alert twice, as two notifications racing (e.g. two replicas' deliveries
        # after a crash): the engine must not run any key twice.
        notes = [
            stored(alerts[batch : batch + 100], batch * 2 + copy)
            for batch in range(0, count, 100)
            for copy in range(2)
        ]
        started = time.perf_counter()
        sem = asyncio.Semaphore(16)

        async def handle(n: StoredNotification) -> None:
            async with sem:
                await engine.handle(n)

        await asyncio.gather(*(handle(n) for n in notes))
        elapsed = time.perf_counter() - started
        await http.aclose()
        return elapsed

    elapsed = asyncio.run(run())
    executions = queries.count(db, "executions")
    from sqlalchemy import text

    with db.connect() as conn:
        dupes = conn.execute(
            text(
                "SELECT count(*) FROM (SELECT policy, step, fingerprint, starts_at, count(*) c "
                "FROM executions GROUP BY 1, 2, 3, 4 HAVING count(*) > 1) d"
            )
        ).scalar_one()
    db.dispose()
    return elapsed, executions, int(dupes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", type=int, default=1000)
    parser.add_argument("--alerts", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        started = time.perf_counter()
        policies = policy.load([policies_file(directory, args.policies)], default_registry())
        load = time.perf_counter() - started
        labels = {
            "alertname": "Alert7",
            "namespace": "production",
            "severity": "critical",
            "team": "t99",
            "deployment": "api",
            "pod": "api-1",
        }
        matched = decide_one(policies, labels)
        for _ in range(300):
            decide_one(policies, labels)
        samples = []
        for _ in range(5000):
            t = time.perf_counter_ns()
            decide_one(policies, labels)
            samples.append(time.perf_counter_ns() - t)
        samples.sort()
        print(
            f"decide: one alert against {len(policies)} policies ({matched} match): "
            f"median {statistics.median(samples) / 1000:.0f} µs, "
            f"p99 {samples[int(len(samples) * 0.99)] / 1000:.0f} µs "
            f"(loading the policies took {load * 1000:.0f} ms)"
        )
        small = policy.load([policies_file(directory, 300)], default_registry())
        elapsed, executions, dupes = storm(directory, small, args.alerts)
        print(
            f"storm: {args.alerts} alerts x 2 deliveries decided in {elapsed:.1f} s "
            f"({args.alerts / elapsed:,.0f} alerts/s), {executions} executions, "
            f"{dupes} keys run twice -> {'OK' if dupes == 0 else 'DUPLICATES'}"
        )
        return 0 if dupes == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
