"""Probes per CPU-second: conea-monitor's /probe vs Debian's blackbox_exporter 0.23.

Both exporters run as their own processes (ours is the real service, ``python -m
monitor serve``) and probe the same local targets, each probe on a fresh connection:

- http: ``http_2xx`` on a Go HTTP server (a third blackbox_exporter's ``/-/healthy``);
- tcp: ``tcp_connect`` on that server's port;
- dns: a ``dns`` module (``query_name`` with an A record) against NSD on 127.0.0.1,
  when our config knows the ``dns`` prober and ``nsd`` is installed.

A load generator in this process keeps ``--concurrency`` probes in flight against one
exporter at a time for ``--seconds`` and reads the exporter's CPU time from /proc. Runs
alternate (ours, blackbox, ours, blackbox, ...) ``--runs`` times per prober, so a
machine whose speed drifts weighs on both alike; each pair gives a ratio of probes per
CPU-second, and the median of the pairs is the figure::

    .venv/bin/python -m bench.probe --seconds 10 --concurrency 50 --runs 3

Only figures are printed; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import aiohttp
import yaml

from bench.common import cpu_seconds
from tests.support.services import free_port, stop

ROOT = pathlib.Path(__file__).resolve().parents[1]
BLACKBOX = shutil.which("prometheus-blackbox-exporter") or shutil.which("blackbox_exporter")
NSD = shutil.which("nsd")
ZONE = "bench.test"


def modules(dns: bool) -> dict[str, object]:
    found: dict[str, object] = {
        "http_2xx": {"prober": "http", "timeout": "5s"},
        "tcp_connect": {"prober": "tcp", "timeout": "5s"},
    }
    if dns:
        found["dns_a"] = {
            "prober": "dns",
            "timeout": "5s",
            "dns": {
                "query_name": f"www.{ZONE}",
                "query_type": "A",
                "transport_protocol": "udp",
                "preferred_ip_protocol": "ip4",
            },
        }
    return found


def wait_port(port: int, what: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode} before listening")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"{what} did not start on port {port}")


def wait_dns(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Until NSD answers an A query for the zone over UDP (it has read the zone)."""
    labels = b"".join(bytes([len(p)]) + p.encode() for p in f"www.{ZONE}".split("."))
    query = struct.pack(">HHHHHH", 1, 0x0100, 1, 0, 0, 0) + labels + b"\0\0\1\0\1"
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"nsd exited with {proc.returncode} before answering")
            sock.sendto(query, ("127.0.0.1", port))
            try:
                answer = sock.recv(512)
            except OSError:
                continue
            if answer[3] & 0x0F == 0 and struct.unpack(">H", answer[6:8])[0] > 0:
                return  # NOERROR with an answer
    raise SystemExit(f"nsd did not answer on port {port}")


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
        return self.cpu / max(self.probes, 1) * 1000


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


def dns_server(tmp: pathlib.Path) -> tuple[list[str] | None, int, str]:
    """NSD serving ``bench.test`` on a free port: (command, port, why not)."""
    from monitor.probes import config

    if "dns" not in config.PROBERS:
        return None, 0, "our probe config has no dns prober"
    if NSD is None:
        return None, 0, "nsd is not installed (apt-get install nsd)"
    port = free_port()
    (tmp / "zone").write_text(
        f"$ORIGIN {ZONE}.\n$TTL 300\n"
        f"@ IN SOA ns.{ZONE}. admin.{ZONE}. 1 3600 600 86400 300\n"
        f"@ IN NS ns.{ZONE}.\nns IN A 127.0.0.1\nwww IN A 127.0.0.1\n"
    )
    (tmp / "nsd.conf").write_text(
        f'server:\n  ip-address: 127.0.0.1@{port}\n  port: {port}\n  username: ""\n'
        f'  chroot: ""\n  database: ""\n  zonelistfile: "{tmp}/zone.list"\n'
        f'  xfrdfile: "{tmp}/xfrd.state"\n  pidfile: "{tmp}/nsd.pid"\n'
        f'  logfile: "{tmp}/nsd.log"\n  server-count: 1\n  tcp-count: 100\n'
        "  rrl-ratelimit: 0\n  rrl-whitelist-ratelimit: 0\n"  # no rate limit: one client
        f"remote-control:\n  control-enable: no\n"
        f'zone:\n  name: {ZONE}\n  zonefile: "{tmp}/zone"\n'
    )
    return [NSD, "-d", "-c", str(tmp / "nsd.conf")], port, ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3, help="alternating pairs per prober")
    parser.add_argument("--probers", default="http,tcp,dns", help="comma-separated: http, tcp, dns")
    args = parser.parse_args()
    if BLACKBOX is None:
        raise SystemExit("prometheus-blackbox-exporter is not installed")
    wanted = set(args.probers.split(","))

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="conea-bench-probe-"))
    dns_cmd, dns_port, dns_skip = dns_server(tmp) if "dns" in wanted else (None, 0, "")
    mods = modules(dns_cmd is not None)
    (tmp / "blackbox.yml").write_text(yaml.safe_dump({"modules": mods}))
    (tmp / "probes.yml").write_text(
        yaml.safe_dump({"allow": {"cidrs": ["127.0.0.0/8"]}, "modules": mods})
    )
    (tmp / "conea-monitor.yml").write_text(
        yaml.safe_dump(
            {
                "data_dir": str(tmp / "data"),
                "policies": [],
                "probes_file": str(tmp / "probes.yml"),
            }
        )
    )
    target_port, blackbox_port, service_port = free_port(), free_port(), free_port()
    quiet = subprocess.DEVNULL

    def blackbox(port: int) -> list[str]:
        return [
            BLACKBOX,
            f"--config.file={tmp / 'blackbox.yml'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]

    service = [sys.executable, "-m", "monitor", "serve", "--config", str(tmp / "conea-monitor.yml")]
    started = [
        ("target", target_port, blackbox(target_port), {}),
        ("blackbox_exporter", blackbox_port, blackbox(blackbox_port), {}),
        (
            "conea-monitor",
            service_port,
            [*service, "--port", str(service_port)],
            {"PYTHONPATH": str(ROOT)},
        ),
    ]
    procs: dict[str, subprocess.Popen[bytes]] = {}
    results: dict[str, list[tuple[Run, Run]]] = {}
    try:
        if dns_cmd is not None:
            procs["nsd"] = subprocess.Popen(dns_cmd, stdout=quiet, stderr=quiet)
        for what, _port, cmd, env in started:
            procs[what] = subprocess.Popen(
                cmd, cwd=ROOT, env={**os.environ, **env}, stdout=quiet, stderr=quiet
            )
        for what, port, _, _ in started:
            wait_port(port, what, procs[what])
        if dns_cmd is not None:
            wait_dns(dns_port, procs["nsd"])
        probes = {
            "http": ("http_2xx", f"http://127.0.0.1:{target_port}/-/healthy"),
            "tcp": ("tcp_connect", f"127.0.0.1:{target_port}"),
        }
        if dns_cmd is not None:
            probes["dns"] = ("dns_a", f"127.0.0.1:{dns_port}")
        for kind, (module, target) in probes.items():
            if kind not in wanted:
                continue
            query = f"/probe?module={module}&target={target}"
            pairs = results.setdefault(kind, [])
            for _ in range(args.runs):
                ours = measure(
                    "conea-monitor /probe",
                    procs["conea-monitor"].pid,
                    f"http://127.0.0.1:{service_port}{query}",
                    args.concurrency,
                    args.seconds,
                )
                theirs = measure(
                    "blackbox_exporter 0.23",
                    procs["blackbox_exporter"].pid,
                    f"http://127.0.0.1:{blackbox_port}{query}",
                    args.concurrency,
                    args.seconds,
                )
                pairs.append((ours, theirs))
    finally:
        for proc in procs.values():
            stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)

    print(
        f"probes, {args.concurrency} concurrent, {args.seconds:g}s a run, {args.runs} "
        f"alternating runs a prober, fresh connection per probe, {os.cpu_count()} CPUs"
    )
    for kind, pairs in results.items():
        print(f"\n{kind} ({probes[kind][0]})")
        print(
            f"{'run':<5}{'exporter':<24}{'probes':>9}{'failed':>8}{'probes/s':>10}"
            f"{'CPU-s/1000':>12}"
        )
        ratios = []
        for i, pair in enumerate(pairs, 1):
            for run in pair:
                print(
                    f"{i:<5}{run.name:<24}{run.probes:>9}{run.failed:>8}{run.rate:>10.0f}"
                    f"{run.cpu_per_1000:>12.3f}"
                )
            ours, theirs = pair
            ratio = theirs.cpu_per_1000 / ours.cpu_per_1000
            ratios.append(ratio)
            print(f"{i:<5}probes per CPU-second, conea/blackbox: {ratio:.2f}x")
        print(
            f"{kind}: median probes per CPU-second, conea/blackbox: "
            f"{statistics.median(ratios):.2f}x"
        )
    if "dns" in wanted and "dns" not in results:
        print(f"\ndns: skipped ({dns_skip})")


if __name__ == "__main__":
    main()
