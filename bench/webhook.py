"""Webhook throughput: alerts durably stored per second, with p50/p99 latency.

Starts the real service (``python -m monitor serve``) on SQLite (or ``--store-url``),
posts real-shaped Alertmanager payloads of 10 alerts each with ``--concurrency``
connections, then checks that the store holds every alert it was answered 200 for.
The same load against a bare FastAPI endpoint that only parses the payload is the
baseline, measured in the same run.

    .venv/bin/python -m bench.webhook [--requests 20000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

from bench.common import LoadResult, cpu_seconds, post_load
from tests.support.services import free_port, stop, wait_for

TEMPLATE = json.loads(
    (
        Path(__file__).resolve().parent.parent
        / "tests/fixtures/alertmanager/firing-group-of-3.json"
    ).read_text()
)


def body_for(i: int, per: int = 10) -> bytes:
    first = TEMPLATE["alerts"][0]
    alerts = []
    for j in range(per):
        labels = {**first["labels"], "pod": f"conea-api-{i}-{j}", "instance": f"10.0.{j}.{i % 250}"}
        alerts.append({**first, "labels": labels, "fingerprint": f"{i:010x}{j:06x}"})
    body = {**TEMPLATE, "alerts": alerts}
    return json.dumps(body).encode()


def serve(args: list[str], cwd: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        [*args, "--port", str(port)],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(
        lambda: httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code in (200, 404),
        30,
        "server",
    )
    return proc, port


def run_load(
    port: int, requests: int, concurrency: int, pid: int
) -> tuple[LoadResult, float, list[int]]:
    url = f"http://127.0.0.1:{port}/webhook/alertmanager"
    # Warm up on bodies outside the measured range.
    asyncio.run(
        post_load(url, lambda i: body_for(10_000_000 + i), total=500, concurrency=concurrency)
    )
    cpu0 = cpu_seconds(pid)
    result, ok = asyncio.run(post_load(url, body_for, total=requests, concurrency=concurrency))
    return result, cpu_seconds(pid) - cpu0, ok


def row(name: str, result: LoadResult, cpu: float, per: int) -> str:
    return (
        f"| {name} | {result.rate * per:,.0f} | {result.rate:,.0f} | "
        f"{result.p50 * 1000:.1f} | {result.percentile(0.99) * 1000:.1f} | "
        f"{cpu / max(result.requests, 1) * 1e6 / per:.0f} | {result.errors} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--store-url", help="e.g. postgresql://user:pw@127.0.0.1:5432/db")
    args = parser.parse_args()
    per = 10
    tmp = Path(tempfile.mkdtemp(prefix="bench-webhook-"))
    store: dict[str, str] = {"url": args.store_url} if args.store_url else {}
    config = tmp / "conea-monitor.yml"
    config.write_text(
        yaml.safe_dump({"data_dir": str(tmp / "data"), "policies": [], "store": store})
    )
    root = Path(__file__).resolve().parent.parent

    proc, port = serve([sys.executable, "-m", "monitor", "serve", "--config", str(config)], root)
    try:
        service, service_cpu, ok = run_load(port, args.requests, args.concurrency, proc.pid)
    finally:
        stop(proc)
    from monitor import settings
    from monitor.store import database, queries

    db = database.connect(settings.load(config).database_url)
    stored = queries.count(db, "alerts")
    db.dispose()
    expected = (len(ok) + 500) * per  # measured requests answered 200, plus the warm-up

    proc, port = serve(
        [sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--log-level", "warning"], root
    )
    try:
        bare, bare_cpu, _ = run_load(port, args.requests, args.concurrency, proc.pid)
    finally:
        stop(proc)

    backend = "PostgreSQL" if args.store_url else "SQLite (WAL, synchronous=FULL)"
    print(
        f"webhook benchmark: {args.requests} requests x {per} alerts, "
        f"{args.concurrency} connections, store {backend}, {time.strftime('%Y-%m-%d')}"
    )
    print()
    print("| endpoint | alerts/s | requests/s | p50 ms | p99 ms | server CPU µs/alert | errors |")
    print("|---|---|---|---|---|---|---|")
    print(row("conea-monitor (parse + durable store)", service, service_cpu, per))
    print(row("bare FastAPI (parse only)", bare, bare_cpu, per))
    print()
    verdict = "OK" if stored == expected else "MISMATCH"
    print(f"store check: {stored} alerts stored, {expected} answered 200 -> {verdict}")
    return 0 if stored == expected else 1


if __name__ == "__main__":
    sys.exit(main())
