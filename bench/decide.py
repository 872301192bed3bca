"""Decision speed and exactly-once under a storm.

1. One alert decided against 1,000 policies: matching (indexed by alertname), rendering
   the target and every guardrail's verdict, as the engine does it (the store's answers
   for cooldown and budget given in memory). Prints the median and p99 in µs.
2. A storm: 10,000 matching alerts over 100 Deployments, every alert delivered twice,
   stored as the webhook stores them, then decided from the store's queue by the real
   consumer and engine (batches, coalescing), on SQLite with one replica and, with
   ``--postgres URL``, on PostgreSQL with two replicas sharing the queue. Prints the
   time until the queue is empty, alerts/s, and checks that no execution key was run
   twice. ``--max-actions COUNT`` configures the blast-radius breaker (a window of 1h),
   whose count every batch that acts then takes and checks in its commit.

    .venv/bin/python -m bench.decide [--policies 1000] [--alerts 10000] [--postgres URL]
        [--max-actions COUNT]
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

import httpx
from sqlalchemy import text

from monitor import policy
from monitor import scope as scope_mod
from monitor.actions import Services, default_registry
from monitor.alerts import payload
from monitor.alerts.context import alert_context
from monitor.alerts.payload import Alert
from monitor.auth import Authenticator
from monitor.engine import guardrails
from monitor.engine.core import Engine
from monitor.engine.firing import FiringCheck
from monitor.metrics import Metrics
from monitor.runtime import Runtime
from monitor.settings import AutomationSettings, MaxActions, Settings
from monitor.store import database, notifications
from monitor.store.facade import Store
from monitor.store.records import TargetHistory


def policies_file(directory: Path, count: int, cooldown: str = "0s") -> Path:
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
                "cooldown": cooldown,
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
            rehearsal=False,
            scope=scope,
            history=history,
        )
        decided += 1
    return decided


def storm_alerts(count: int, targets: int) -> list[bytes]:
    """``count`` matching alerts over ``targets`` Deployments, notifications of 100."""
    bodies = []
    for first in range(0, count, 100):
        alerts = [
            {
                "status": "firing",
                "labels": {
                    "alertname": f"Alert{i % 300}",
                    "namespace": "production",
                    "team": "t1",
                    "deployment": f"api-{i % targets}",
                    "pod": f"api-{i}",
                },
                "annotations": {},
                "startsAt": "2026-11-28T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": f"{i:016x}",
            }
            for i in range(first, min(first + 100, count))
        ]
        bodies.append(
            json.dumps(
                {
                    "receiver": "conea",
                    "status": "firing",
                    "alerts": alerts,
                    "groupLabels": {},
                    "commonLabels": {},
                    "commonAnnotations": {},
                    "externalURL": "http://alertmanager:9093",
                    "version": "4",
                    "groupKey": f"{{}}:{{batch={first}}}",
                    "truncatedAlerts": 0,
                }
            ).encode()
        )
    return bodies


def storm(
    url: str,
    policies: policy.PolicySet,
    count: int,
    targets: int,
    replicas: int,
    max_actions: int | None = None,
) -> dict[str, float]:
    """Store ``count`` alerts, each delivered twice, then let ``replicas`` consumers
    (each its own engine and connection pool, as separate replicas would) take them
    from the store's queue until it is empty. Returns the figures."""
    db = database.connect(url, sqlite_synchronous="NORMAL")
    database.migrate(db)
    now = datetime.now(UTC)
    bodies = storm_alerts(count, targets)
    # Every notification twice, as Alertmanager re-delivers after a lost answer.
    items = [(b, payload.parse(b), now) for body in bodies for b in (body, body)]
    for first in range(0, len(items), 100):
        notifications.write_batch(db, items[first : first + 100])

    async def run() -> float:
        http = httpx.AsyncClient()
        settings = Settings(policies=[])
        parts = []
        for replica in range(replicas):
            handle = db if replica == 0 else database.connect(url)
            metrics = Metrics()
            engine = Engine(
                store=Store(handle),
                policies=policies,
                registry=default_registry(),
                services=Services(http=http),
                metrics=metrics,
                automation=AutomationSettings(
                    max_concurrent_executions=64,
                    max_actions=(
                        None
                        if max_actions is None
                        else MaxActions.model_validate({"count": max_actions, "window": "1h"})
                    ),
                ),
                firing=FiringCheck(None, None, http),
                owner=f"replica-{replica}",
            )
            writer = notifications.NotificationWriter(handle)
            writer.start()
            rt = Runtime(
                settings,
                metrics,
                handle,
                writer,
                Authenticator(settings),
                handler=engine.decide_batch,
                prefer=engine.urgent,
            )
            rt.idle_poll = 0.02
            parts.append((engine, rt, writer, handle))
        started = time.perf_counter()
        for _, rt, _, _ in parts:
            rt.start()
        store = Store(db)
        while (await store.backlog())[0] > 0:
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - started
        for engine, rt, writer, handle in parts:
            await rt.drain()
            await engine.stop(within=60)
            writer.stop()
            if handle is not db:
                handle.dispose()
        await http.aclose()
        return elapsed

    elapsed = asyncio.run(run())
    with db.connect() as conn:
        dupes = conn.execute(
            text(
                "SELECT count(*) FROM (SELECT policy, step, fingerprint, starts_at, count(*) c "
                "FROM executions GROUP BY 1, 2, 3, 4 HAVING count(*) > 1) d"
            )
        ).scalar_one()
        acted = conn.execute(
            text("SELECT count(*) FROM executions WHERE state <> 'deferred'")
        ).scalar_one()
        deferred = conn.execute(
            text("SELECT count(*) FROM executions WHERE state = 'deferred'")
        ).scalar_one()
        joined = conn.execute(text("SELECT count(*) FROM coalesced")).scalar_one()
    db.dispose()
    return {
        "seconds": elapsed,
        "rate": count / elapsed,
        "acted": acted,
        "deferred": deferred,
        "coalesced": joined,
        "dupes": dupes,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", type=int, default=1000)
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--targets", type=int, default=100)
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="also run the storm on this (empty) PostgreSQL database, two replicas sharing it",
    )
    parser.add_argument(
        "--max-actions",
        type=int,
        metavar="COUNT",
        help="configure the blast-radius breaker: COUNT live actions in 1h",
    )
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
        # The storm's policies cool down for 5 minutes after acting, as real ones do (the
        # bundled ones: 10 minutes to 4 hours): a storm is decided, not acted on, alert by
        # alert.
        small = policy.load([policies_file(directory, 300, "5m")], default_registry())
        runs = [("SQLite, 1 replica", f"sqlite:///{directory / 'storm.db'}", 1)]
        if args.postgres:
            runs.append(("PostgreSQL, 2 replicas", args.postgres, 2))
        failed = False
        for label, url, replicas in runs:
            got = storm(url, small, args.alerts, args.targets, replicas, args.max_actions)
            failed = failed or got["dupes"] > 0
            print(
                f"storm ({label}): {args.alerts} alerts x 2 deliveries over {args.targets} "
                f"targets decided in {got['seconds']:.2f} s ({got['rate']:,.0f} alerts/s): "
                f"{got['acted']:.0f} executions acted, {got['deferred']:.0f} deferred, "
                f"{got['coalesced']:.0f} alerts coalesced; {got['dupes']:.0f} keys run twice "
                f"-> {'DUPLICATES' if got['dupes'] else 'OK'}"
            )
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
