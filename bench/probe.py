"""Probe throughput and CPU: conea-monitor's /probe vs Debian's blackbox_exporter 0.23.

Both exporters run as their own processes and probe the same local HTTP target (a
second blackbox_exporter's ``/-/healthy``, a Go server that costs little CPU) with an
``http_2xx`` module, each probe on a fresh connection. A load generator in this process
keeps ``--concurrency`` probes in flight against one exporter at a time for
``--seconds``, and reads the exporter's CPU time from /proc. It prints probes/s and
CPU-seconds per 1,000 probes for both, and their ratio::

    .venv/bin/python bench/probe.py --seconds 10 --concurrency 50

Only figures are printed; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import aiohttp

ROOT = pathlib.Path(__file__).resolve().parents[1]
BLACKBOX = shutil.which("prometheus-blackbox-exporter") or shutil.which("blackbox_exporter")
TICKS = os.sysconf("SC_CLK_TCK")

BLACKBOX_CONFIG = """\
modules:
  http_2xx:
    prober: http
    timeout: 5s
"""
SERVICE_CONFIG = """\
allow:
  cidrs: [127.0.0.0/8]
modules:
  http_2xx:
    prober: http
    timeout: 5s
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def wait_port(port: int, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"{what} did not start on port {port}")


@dataclass
class Run:
    name: str
    probes: int
    failed: int
    seconds: float
    cpu: float

    @property
    def rate(self) -> float:
        return self.probes / self.seconds

    @property
    def cpu_per_1000(self) -> float:
        return self.cpu / self.probes * 1000


async def load(url: str, concurrency: int, seconds: float) -> tuple[int, int, float]:
    """Keep ``concurrency`` requests in flight for ``seconds``; (ok, failed, elapsed)."""
    ok = failed = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        stop = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal ok, failed
            while time.monotonic() < stop:
                async with session.get(url) as resp:
                    body = await resp.read()
                if resp.status == 200 and b"\nprobe_success 1" in body:
                    ok += 1
                else:
                    failed += 1

        start = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return ok, failed, time.monotonic() - start


def measure(name: str, pid: int, url: str, concurrency: int, seconds: float) -> Run:
    asyncio.run(load(url, concurrency, min(1.0, seconds)))  # warm-up
    before = cpu_seconds(pid)
    ok, failed, elapsed = asyncio.run(load(url, concurrency, seconds))
    return Run(name, ok + failed, failed, elapsed, cpu_seconds(pid) - before)


def serve(port: int, config: pathlib.Path) -> None:
    """Run the service's /probe the way create_app wires it (``--serve`` mode)."""
    import contextlib
    from collections.abc import AsyncIterator

    import fastapi
    import uvicorn

    from monitor import metrics
    from monitor.api import probe
    from monitor.probes import ProbeService

    @contextlib.asynccontextmanager
    async def lifespan(app: fastapi.FastAPI) -> AsyncIterator[None]:
        yield
        await app.state.probe_service.aclose()

    app = fastapi.FastAPI(lifespan=lifespan)
    app.state.probe_service = ProbeService.from_file(config, metrics.Metrics())
    app.include_router(probe.router)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--config", type=pathlib.Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.config)
        return
    if BLACKBOX is None:
        raise SystemExit("prometheus-blackbox-exporter is not installed")

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="conea-bench-probe-"))
    (tmp / "blackbox.yml").write_text(BLACKBOX_CONFIG)
    (tmp / "probes.yml").write_text(SERVICE_CONFIG)
    target_port, blackbox_port, service_port = free_port(), free_port(), free_port()
    quiet = subprocess.DEVNULL
    procs = [
        subprocess.Popen(
            [
                BLACKBOX,
                f"--config.file={tmp / 'blackbox.yml'}",
                f"--web.listen-address=127.0.0.1:{target_port}",
            ],
            stdout=quiet,
            stderr=quiet,
        ),
        subprocess.Popen(
            [
                BLACKBOX,
                f"--config.file={tmp / 'blackbox.yml'}",
                f"--web.listen-address=127.0.0.1:{blackbox_port}",
            ],
            stdout=quiet,
            stderr=quiet,
        ),
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve",
                str(service_port),
                "--config",
                str(tmp / "probes.yml"),
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=quiet,
            stderr=quiet,
        ),
    ]
    try:
        for port, what in (
            (target_port, "target"),
            (blackbox_port, "blackbox_exporter"),
            (service_port, "conea-monitor"),
        ):
            wait_port(port, what)
        target = f"http://127.0.0.1:{target_port}/-/healthy"
        query = f"/probe?module=http_2xx&target={target}"
        runs = [
            measure(
                "blackbox_exporter 0.23",
                procs[1].pid,
                f"http://127.0.0.1:{blackbox_port}{query}",
                args.concurrency,
                args.seconds,
            ),
            measure(
                "conea-monitor /probe",
                procs[2].pid,
                f"http://127.0.0.1:{service_port}{query}",
                args.concurrency,
                args.seconds,
            ),
        ]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)

    print(
        f"http_2xx probes, {args.concurrency} concurrent, {args.seconds:g}s each, "
        f"fresh connection per probe, {os.cpu_count()} CPUs"
    )
    print(f"{'exporter':<24}{'probes':>9}{'failed':>8}{'probes/s':>10}{'CPU-s/1000':>12}")
    for run in runs:
        print(
            f"{run.name:<24}{run.probes:>9}{run.failed:>8}{run.rate:>10.0f}"
            f"{run.cpu_per_1000:>12.3f}"
        )
    bb, ours = runs
    print(
        f"ratio conea/blackbox: probes/s {ours.rate / bb.rate:.2f}x, "
        f"CPU per probe {ours.cpu_per_1000 / bb.cpu_per_1000:.2f}x, "
        f"probes per CPU-second {bb.cpu_per_1000 / ours.cpu_per_1000:.2f}x"
    )


if __name__ == "__main__":
    main()
