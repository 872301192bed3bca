"""A sustained alert storm against the real service: drain, memory, fairness and ingest.

Starts ``python -m monitor serve`` on the bundled config (config/conea-monitor.yml and the
policies of remediations/; its own SQLite store; no Kubernetes, so dry-run) and, as a
user would, for ``--seconds``:

1. ``--concurrency`` connections post notifications of ``--per`` ``HighErrorRate`` alerts
   (labelled as rules/conea-api.yml sets them, every alert a fresh fingerprint, the
   ``deployment`` cycling over ``--targets`` names) as fast as the service answers;
2. every ``seconds / --probes`` one alert for a target never used before is posted; its
   latency runs from the 200 answer until ``GET /api/v1/audit`` shows the
   high-error-rate policy's decision, defer or skip for it (polled every 20 ms);
3. every second the service's RSS (/proc/PID/status) and the backlog gauges of
   ``/metrics`` are sampled; after the load stops, the time until the backlog is 0 (the
   gauge, and no undecided notification left in the store) is the drain time.

Then the same load runs against the parse-only endpoint (bench/bare_app.py) for
``--baseline-seconds``, and the store is checked: every alert answered 200 is stored
and no execution key was run twice. The issue's targets (drain <= 10 s, RSS growth
< 100 MB, fresh-target p99 <= 1 s, ingest >= 0.5 of parse-only) are printed OK or MISS;
the exit status is 1 only when a check fails.

    .venv/bin/python -m bench.storm [--seconds 60] [--concurrency 50] [--targets 40]
                                    [--probes 30] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import multiprocessing
import re
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from sqlalchemy import text

from bench.common import LoadResult, post_load
from bench.webhook import serve
from monitor import settings
from monitor.store import database
from tests.support.services import stop

ROOT = Path(__file__).resolve().parent.parent
POLICY = "high-error-rate"  # the bundled policy whose target is the alert's deployment
DECIDED = {"decision", "defer", "skip"}  # audit kinds that say the policy has decided
POLL = 0.02
SAMPLE = 1.0
MB = 1024 * 1024
UNDECIDED_SQL = (
    "SELECT count(*), coalesce(sum(alert_count), 0) FROM notifications "
    "WHERE processed_at IS NULL AND poisoned_at IS NULL"
)
DUPLICATE_KEYS_SQL = (  # as bench/decide.py counts them
    "SELECT count(*) FROM (SELECT policy, step, fingerprint, starts_at, count(*) c "
    "FROM executions GROUP BY 1, 2, 3, 4 HAVING count(*) > 1) d"
)
TARGETS = {  # the "Done when", as (what, limit)
    "drain": "backlog drained within 10 s of the load stopping",
    "rss": "RSS grows by less than 100 MB",
    "fresh": "fresh-target alert decided within 1 s (p99)",
    "ingest": "ingest at least 0.5 of the parse-only endpoint",
}


def config_file(directory: Path) -> Path:
    """The bundled config with its paths made absolute, its own data_dir, and no
    Kubernetes (so every decision is a dry run)."""
    data = yaml.safe_load((ROOT / "config/conea-monitor.yml").read_text())
    data.update(
        data_dir=str(directory / "data"),
        policies=[str(ROOT / "remediations")],
        probes_file=str(ROOT / "config/probes.yml"),
        kubernetes={"mode": "none"},
    )
    path = directory / "conea-monitor.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def alert(fingerprint: str, deployment: str, starts_at: str) -> dict[str, Any]:
    """A HighErrorRate alert as rules/conea-api.yml labels it (namespace, job, service,
    severity), with the deployment the policy targets."""
    labels = {
        "alertname": "HighErrorRate",
        "namespace": "production",
        "job": deployment,
        "service": deployment,
        "deployment": deployment,
        "severity": "critical",
    }
    return {
        "status": "firing",
        "labels": labels,
        "annotations": {
            "summary": f"{deployment} in production fails more than 5% of requests",
            "description": f"12% of the requests to {deployment} answered 5xx.",
            "runbook_url": "https://github.com/conea/conea-monitor/blob/main/docs/runbooks/HighErrorRate.md",
        },
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=HighErrorRate",
        "fingerprint": fingerprint,
    }


def notification(alerts: list[dict[str, Any]]) -> bytes:
    return json.dumps(
        {
            "receiver": "conea-monitor",
            "status": "firing",
            "alerts": alerts,
            "groupLabels": {"alertname": "HighErrorRate"},
            "commonLabels": {"alertname": "HighErrorRate", "severity": "critical"},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "version": "4",
            "groupKey": '{}:{alertname="HighErrorRate"}',
            "truncatedAlerts": 0,
        }
    ).encode()


@dataclass
class Storm:
    """The load's bodies: request ``i`` carries alerts ``i*per .. i*per+per-1``."""

    targets: int
    per: int = 10
    starts_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def fingerprint(self, i: int, j: int) -> str:
        return f"{i:010x}{j:06x}"

    def body(self, i: int) -> bytes:
        return notification(
            [
                alert(
                    self.fingerprint(i, j),
                    f"api-{(i * self.per + j) % self.targets}",
                    self.starts_at,
                )
                for j in range(self.per)
            ]
        )

    def probe(self, k: int) -> tuple[str, bytes]:
        fingerprint = f"ff{k:014x}"  # never a load fingerprint: those start with zeros
        return fingerprint, notification([alert(fingerprint, f"fresh-{k}", self.starts_at)])


def load(
    url: str, targets: int, per: int, starts_at: str, concurrency: int, seconds: float
) -> tuple[LoadResult, list[int]]:
    """The storm's load for ``seconds``, run in a process of its own so that the probes'
    and the sampler's clocks are not held up by the load's event loop (about 50 ms at
    p99 when they shared one)."""
    return asyncio.run(
        post_load(
            url,
            Storm(targets, per, starts_at).body,
            total=10**12,
            concurrency=concurrency,
            seconds=seconds,
        )
    )


def ready() -> None:
    """Nothing: called once so that the load's process has started and imported."""


def percentile(data: list[float], q: float) -> float:
    if not data:
        return math.nan
    data = sorted(data)
    return data[min(len(data) - 1, int(q * len(data)))]


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def gauge(exposition: str, name: str) -> float | None:
    """The sum of a metric's samples in a text exposition; None if it is not there."""
    values = re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", exposition, re.MULTILINE)
    return sum(float(v) for v in values) if values else None


class Store:
    """Read-only questions to the service's store (SQLite in WAL mode: readers do not
    block the service's writer)."""

    def __init__(self, url: str) -> None:
        self.db = database.connect(url)

    def undecided(self) -> tuple[int, int]:
        with self.db.connect() as conn:
            notes, alerts = conn.execute(text(UNDECIDED_SQL)).one()
        return int(notes), int(alerts)

    def fingerprints(self) -> set[str]:
        with self.db.connect() as conn:
            return {row[0] for row in conn.execute(text("SELECT fingerprint FROM alerts"))}

    def duplicate_keys(self) -> int:
        with self.db.connect() as conn:
            return int(conn.execute(text(DUPLICATE_KEYS_SQL)).scalar_one())

    def close(self) -> None:
        self.db.dispose()


@dataclass
class Run:
    load: LoadResult | None = None
    answered: set[str] = field(default_factory=set)  # the load's fingerprints answered 200
    probes_answered: set[str] = field(default_factory=set)
    probes_sent: int = 0
    latencies: list[float] = field(default_factory=list)
    samples: list[dict[str, float | None]] = field(default_factory=list)
    drain: float | None = None
    undecided_at_stop: tuple[int, int] = (0, 0)
    gauge_lagged: bool = False  # the gauge read 0 while the store held undecided ones


async def storm(
    args: argparse.Namespace, port: int, pid: int, store: Store, pool: ProcessPoolExecutor
) -> Run:
    base = f"http://127.0.0.1:{port}"
    plan = Storm(args.targets, args.per)
    run = Run()
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(pool, ready)
    started = time.monotonic()
    done = asyncio.Event()  # the drain is measured: probes still undecided give up
    async with aiohttp.ClientSession() as http:

        async def metrics() -> tuple[float | None, float | None]:
            try:
                async with http.get(f"{base}/metrics") as resp:
                    body = await resp.text()
            except aiohttp.ClientError:
                return None, None
            return (
                gauge(body, "conea_monitor_backlog_notifications"),
                gauge(body, "conea_monitor_backlog_alerts"),
            )

        async def sample() -> None:
            notes, alerts = await metrics()
            run.samples.append(
                {
                    "t": round(time.monotonic() - started, 1),
                    "rss_mb": round(rss_bytes(pid) / MB, 1),
                    "backlog_notifications": notes,
                    "backlog_alerts": alerts,
                }
            )

        async def sampler() -> None:
            while not done.is_set():
                await sample()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), SAMPLE)

        async def probe(k: int) -> None:
            fingerprint, body = plan.probe(k)
            headers = {"content-type": "application/json"}
            url = f"{base}/webhook/alertmanager"
            try:
                async with http.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200:
                        return
            except aiohttp.ClientError:
                return
            answered = time.monotonic()
            run.probes_answered.add(fingerprint)
            params = {"fingerprint": fingerprint, "policy": POLICY}
            while not done.is_set():
                try:
                    async with http.get(f"{base}/api/v1/audit", params=params) as resp:
                        items = (await resp.json())["items"] if resp.status == 200 else []
                except aiohttp.ClientError:
                    items = []
                if any(item["kind"] in DECIDED for item in items):
                    run.latencies.append(time.monotonic() - answered)
                    return
                await asyncio.sleep(POLL)

        async def prober() -> list[asyncio.Task[None]]:
            interval = args.seconds / args.probes
            tasks = []
            for k in range(args.probes):
                await asyncio.sleep(max(0.0, started + (k + 0.5) * interval - time.monotonic()))
                tasks.append(asyncio.create_task(probe(k)))
                run.probes_sent += 1
            return tasks

        await sample()  # before the first request: the RSS at start
        sampling = asyncio.create_task(sampler())
        probing = asyncio.create_task(prober())
        run.load, ok = await loop.run_in_executor(
            pool,
            load,
            f"{base}/webhook/alertmanager",
            plan.targets,
            plan.per,
            plan.starts_at,
            args.concurrency,
            args.seconds,
        )
        load_stopped = time.monotonic()
        run.answered.update(plan.fingerprint(i, j) for i in ok for j in range(plan.per))
        run.undecided_at_stop = await asyncio.to_thread(store.undecided)
        probe_tasks = await probing
        while time.monotonic() - load_stopped < args.drain_timeout:
            _, alerts = await metrics()
            if not alerts:  # 0, or no gauge: the store says
                notes, _ = await asyncio.to_thread(store.undecided)
                if notes == 0:
                    run.drain = time.monotonic() - load_stopped
                    break
                run.gauge_lagged = run.gauge_lagged or alerts == 0
            await asyncio.sleep(0.1)
        if probe_tasks:  # a probe's last poll may be under way: give it a moment
            await asyncio.wait(probe_tasks, timeout=2)
        done.set()
        await asyncio.gather(sampling, *probe_tasks)
    return run


def baseline(args: argparse.Namespace, pool: ProcessPoolExecutor) -> LoadResult:
    """The same load (generator, concurrency, bodies) against the parse-only endpoint."""
    proc, port = serve(
        [sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--log-level", "warning"], ROOT
    )
    try:
        url = f"http://127.0.0.1:{port}/webhook/alertmanager"
        plan = Storm(args.targets, args.per)
        future = pool.submit(
            load,
            url,
            plan.targets,
            plan.per,
            plan.starts_at,
            args.concurrency,
            args.baseline_seconds,
        )
        result, ok = future.result()
    finally:
        stop(proc)
    return dataclasses.replace(result, requests=len(ok))  # its rate: answers 200, as ingest


def verdict(ok: bool) -> str:
    return "OK" if ok else "MISS"


def summarise(
    args: argparse.Namespace, run: Run, bare: LoadResult, stored: set[str], dupes: int
) -> dict[str, Any]:
    assert run.load is not None
    load_alerts = len(run.answered)
    ingest = load_alerts / run.load.seconds if run.load.seconds else 0.0
    bare_rate = bare.rate * args.per
    ratio = ingest / bare_rate if bare_rate else 0.0
    undecided = run.probes_sent - len(run.latencies)
    # An undecided probe counts as never decided.
    latencies = run.latencies + [math.inf] * undecided
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    top = max(latencies) if latencies else math.nan
    rss = [s["rss_mb"] for s in run.samples if s["rss_mb"] is not None]
    rss_start, rss_end, rss_max = (rss[0], rss[-1], max(rss)) if rss else (0.0, 0.0, 0.0)
    backlog = [s["backlog_alerts"] or 0.0 for s in run.samples]
    answered = run.answered | run.probes_answered
    missing = answered - stored
    drain = math.inf if run.drain is None else run.drain  # not drained: never

    def finite(value: float) -> float | None:
        return round(value, 4) if math.isfinite(value) else None

    targets = {
        "drain": (drain <= 10, finite(drain)),
        "rss": (rss_max - rss_start < 100, round(rss_max - rss_start, 1)),
        "fresh": (bool(latencies) and p99 <= 1.0, finite(p99)),
        "ingest": (ratio >= 0.5, round(ratio, 3)),
    }
    return {
        "run": {
            "seconds": args.seconds,
            "concurrency": args.concurrency,
            "targets": args.targets,
            "probes": args.probes,
            "alerts_per_notification": args.per,
            "date": time.strftime("%Y-%m-%d"),
        },
        "ingest": {
            "alerts_answered_200": load_alerts,
            "seconds": round(run.load.seconds, 2),
            "alerts_per_s": round(ingest, 1),
            "p50_ms": finite(run.load.p50 * 1000),
            "p99_ms": finite(run.load.percentile(0.99) * 1000),
            "errors": run.load.errors,
            "parse_only_alerts_per_s": round(bare_rate, 1),
            "parse_only_seconds": round(bare.seconds, 2),
            "ratio": round(ratio, 3),
        },
        "fresh_target": {
            "sent": run.probes_sent,
            "decided": len(run.latencies),
            "p50_s": finite(p50),
            "p99_s": finite(p99),
            "max_s": finite(top),
        },
        "rss_mb": {
            "start": round(rss_start, 1),
            "end": round(rss_end, 1),
            "max": round(rss_max, 1),
            "growth": round(rss_max - rss_start, 1),
        },
        "backlog": {
            "max_alerts_gauge": max(backlog, default=0.0),
            "undecided_at_stop": {
                "notifications": run.undecided_at_stop[0],
                "alerts": run.undecided_at_stop[1],
            },
            "drain_s": finite(drain),
            "drain_timeout_s": args.drain_timeout,
            "gauge_read_0_before_the_store_was_empty": run.gauge_lagged,
        },
        "checks": {
            "alerts_answered_200": len(answered),
            "alerts_missing_from_store": len(missing),
            "execution_keys_run_twice": dupes,
            "ok": not missing and dupes == 0,
        },
        "targets": {
            name: {"what": TARGETS[name], "measured": measured, "verdict": verdict(ok)}
            for name, (ok, measured) in targets.items()
        },
        "samples": run.samples,
    }


def report(r: dict[str, Any]) -> None:
    run, ingest, fresh, rss, backlog, checks = (
        r[k] for k in ("run", "ingest", "fresh_target", "rss_mb", "backlog", "checks")
    )

    def s(value: float | None) -> str:
        return "undecided" if value is None else f"{value:.3f} s"

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f} ms"

    print(
        f"storm benchmark: {run['seconds']} s, {run['concurrency']} connections, "
        f"{run['alerts_per_notification']} HighErrorRate alerts per notification over "
        f"{run['targets']} targets, {run['probes']} fresh-target probes, bundled config "
        f"(SQLite, dry-run), {run['date']}"
    )
    print()
    print(
        f"ingest: {ingest['alerts_answered_200']:,} alerts answered 200 in "
        f"{ingest['seconds']} s: {ingest['alerts_per_s']:,.0f} alerts/s "
        f"(p50 {ms(ingest['p50_ms'])}, p99 {ms(ingest['p99_ms'])}, {ingest['errors']} errors)"
    )
    print(
        f"parse-only endpoint, same load: {ingest['parse_only_alerts_per_s']:,.0f} alerts/s "
        f"over {ingest['parse_only_seconds']} s; ratio {ingest['ratio']:.2f}"
    )
    print(
        f"fresh-target decision latency ({fresh['sent']} sent, {fresh['decided']} decided): "
        f"p50 {s(fresh['p50_s'])}, p99 {s(fresh['p99_s'])}, max {s(fresh['max_s'])}"
    )
    print(
        f"RSS: start {rss['start']:.0f} MB, end {rss['end']:.0f} MB, max {rss['max']:.0f} MB, "
        f"growth (max - start) {rss['growth']:.0f} MB"
    )
    stop_notes = backlog["undecided_at_stop"]
    drained = (
        f"drained {backlog['drain_s']:.1f} s after the load stopped"
        if backlog["drain_s"] is not None
        else f"not drained after {backlog['drain_timeout_s']:.0f} s"
    )
    print(
        f"backlog: at most {backlog['max_alerts_gauge']:,.0f} alerts (gauge); "
        f"{stop_notes['alerts']:,} alerts in {stop_notes['notifications']:,} notifications "
        f"undecided in the store when the load stopped; {drained}"
        + (
            " (the gauge read 0 before the store was empty)"
            if backlog["gauge_read_0_before_the_store_was_empty"]
            else ""
        )
    )
    print(
        f"store check: {checks['alerts_answered_200']:,} alerts answered 200, "
        f"{checks['alerts_missing_from_store']} missing from the store -> "
        f"{'OK' if checks['alerts_missing_from_store'] == 0 else 'LOST'}"
    )
    print(
        f"execution keys run twice: {checks['execution_keys_run_twice']} -> "
        f"{'OK' if checks['execution_keys_run_twice'] == 0 else 'DUPLICATES'}"
    )
    print()
    print("| target (issue 14) | measured | verdict |")
    print("|---|---|---|")
    units = {"drain": " s", "rss": " MB", "fresh": " s", "ingest": ""}
    absent = {"drain": "not drained", "fresh": "some never decided"}
    for name, t in r["targets"].items():
        measured = absent[name] if t["measured"] is None else f"{t['measured']}{units[name]}"
        print(f"| {t['what']} | {measured} | {t['verdict']} |")


def positive(kind: type[int] | type[float]) -> Any:
    def parse(value: str) -> int | float:
        number = kind(value)
        if not number > 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0, not {value!r}")
        return number

    return parse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=positive(float), default=60.0)
    parser.add_argument("--concurrency", type=positive(int), default=50)
    parser.add_argument("--targets", type=positive(int), default=40)
    parser.add_argument(
        "--per", type=positive(int), default=10, help="alerts per notification (default 10)"
    )
    parser.add_argument("--probes", type=positive(int), default=30)
    parser.add_argument("--baseline-seconds", type=positive(float), default=10.0)
    parser.add_argument("--drain-timeout", type=positive(float), default=120.0)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    spawn = multiprocessing.get_context("spawn")
    with (
        ProcessPoolExecutor(1, mp_context=spawn) as pool,
        tempfile.TemporaryDirectory(prefix="bench-storm-") as tmp,
    ):
        config = config_file(Path(tmp))
        store = Store(settings.load(config).database_url)
        command = [sys.executable, "-m", "monitor", "serve", "--config", str(config)]
        proc, port = serve(command, ROOT)
        try:
            run = asyncio.run(storm(args, port, proc.pid, store, pool))
        finally:
            stop(proc)
        try:
            stored, dupes = store.fingerprints(), store.duplicate_keys()
        finally:
            store.close()
        bare = baseline(args, pool)
    result = summarise(args, run, bare, stored, dupes)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        report(result)
    return 0 if result["checks"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
