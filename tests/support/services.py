"""Real services for tests: throwaway PostgreSQL, Redis, Prometheus and Alertmanager.

Each starts on 127.0.0.1 on a free port in a temporary directory and is stopped at the
end of the test session. When a program is missing the fixture skips (fine on a laptop);
``tests/conftest.py`` turns any skip into a failure when ``CI`` is set.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], bool], timeout: float = 20.0, what: str = "service") -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not come up within {timeout}s (last error: {last!r})")


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def need_binary(name: str, *candidates: str) -> str:
    for candidate in (name, *candidates):
        found = shutil.which(candidate)
        if found:
            return found
    pytest.skip(f"{name} is not installed (Debian package needed; see .ci/run)")


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Postgres:
    host: str
    port: int
    user: str
    password: str
    superuser: str

    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def dsn(
        self, database: str = "postgres", user: str | None = None, password: str | None = None
    ) -> str:
        return (
            f"host={self.host} port={self.port} dbname={database} "
            f"user={user or self.user} password={password or self.password}"
        )

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return name


def _pg_bindir() -> str | None:
    env = os.environ.get("CONEA_TEST_PG_BINDIR")
    if env:
        return env
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    return dirs[-1] if dirs else None


@contextlib.contextmanager
def postgres_server() -> Iterator[Postgres]:
    """A throwaway PostgreSQL cluster (initdb) on a free port, with a password user."""
    url = os.environ.get("CONEA_TEST_POSTGRES")
    if url:  # host:port:user:password of an existing superuser, for laptops
        host, port_text, user, password = url.split(":", 3)
        yield Postgres(host, int(port_text), user, password, user)
        return
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries are not installed (Debian postgresql)")
    tmp = tempfile.mkdtemp(prefix="conea-pg-")
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the cluster as the postgres user
        pw = pwd.getpwnam("postgres")
        os.chown(tmp, pw.pw_uid, pw.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    data = os.path.join(tmp, "data")
    port = free_port()
    subprocess.run(
        [
            *run_as,
            f"{bindir}/initdb",
            "-D",
            data,
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale",
            "C",
        ],
        check=True,
        capture_output=True,
    )
    conf = (
        f"listen_addresses='127.0.0.1'\nport={port}\nunix_socket_directories='{tmp}'\n"
        "fsync=off\nsynchronous_commit=off\nfull_page_writes=off\nmax_connections=200\n"
    )
    with open(os.path.join(data, "postgresql.conf"), "a") as fh:
        fh.write(conf)
    log = open(os.path.join(tmp, "log"), "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [*run_as, f"{bindir}/postgres", "-D", data], stdout=subprocess.DEVNULL, stderr=log
    )
    try:
        wait_for(lambda: port_open(port), 30, "PostgreSQL")
        import psycopg

        def ready() -> bool:
            with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres"):
                return True

        wait_for(ready, 30, "PostgreSQL")
        with psycopg.connect(
            f"host=127.0.0.1 port={port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute("CREATE ROLE conea LOGIN SUPERUSER PASSWORD 'conea-test'")
        yield Postgres("127.0.0.1", port, "conea", "conea-test", "postgres")
    finally:
        stop(proc)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class Redis:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"


@contextlib.contextmanager
def redis_server(*extra: str) -> Iterator[Redis]:
    binary = need_binary("redis-server")
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="conea-redis-")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            tmp,
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: port_open(port), 20, "Redis")
        yield Redis("127.0.0.1", port)
    finally:
        stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class Prometheus:
    port: int
    directory: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reload(self) -> None:
        import httpx

        httpx.post(f"{self.url}/-/reload", timeout=10).raise_for_status()


@contextlib.contextmanager
def prometheus_server(
    config: str,
    files: dict[str, str] | None = None,
    *,
    history: str | None = None,
    args: tuple[str, ...] = (),
) -> Iterator[Prometheus]:
    """Prometheus with ``config`` (YAML text) and extra ``files`` (e.g. rule files)
    written beside it; relative paths in the config resolve against that directory.
    ``history`` (OpenMetrics text ending in ``# EOF``) is backfilled into its TSDB first
    with ``promtool tsdb create-blocks-from openmetrics``; ``args`` are extra flags."""
    binary = need_binary("prometheus")
    tmp = Path(tempfile.mkdtemp(prefix="conea-prom-"))
    for name, text in (files or {}).items():
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_text(text)
    (tmp / "prometheus.yml").write_text(config)
    if history is not None:
        promtool = need_binary("promtool")
        (tmp / "history.om").write_text(history)
        subprocess.run(
            [promtool, "tsdb", "create-blocks-from", "openmetrics", "history.om", "data"],
            cwd=tmp,
            check=True,
            capture_output=True,
        )
    port = free_port()
    log = open(tmp / "log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.tsdb.path={tmp / 'data'}",
            "--web.enable-lifecycle",
            "--web.enable-admin-api",
            *args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
        cwd=tmp,
    )
    try:
        import httpx

        wait_for(
            lambda: httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=1).status_code == 200,
            30,
            "Prometheus",
        )
        yield Prometheus(port, tmp, proc)
    finally:
        stop(proc)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class Alertmanager:
    port: int
    directory: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.contextmanager
def alertmanager_server(config: str, files: dict[str, str] | None = None) -> Iterator[Alertmanager]:
    binary = need_binary("prometheus-alertmanager", "alertmanager")
    tmp = Path(tempfile.mkdtemp(prefix="conea-am-"))
    for name, text in (files or {}).items():
        (tmp / name).write_text(text)
    (tmp / "alertmanager.yml").write_text(config)
    port = free_port()
    log = open(tmp / "log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp / 'alertmanager.yml'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.path={tmp / 'data'}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
        cwd=tmp,
    )
    try:
        import httpx

        wait_for(
            lambda: httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=1).status_code == 200,
            30,
            "Alertmanager",
        )
        yield Alertmanager(port, tmp)
    finally:
        stop(proc)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class DNSServer:
    """An authoritative DNS server (NSD) answering on 127.0.0.1 and ::1, udp and tcp."""

    port: int
    directory: Path

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


def _nsd_answers(port: int, zone: str) -> bool:
    import dns.message
    import dns.query

    query = dns.message.make_query(zone, "SOA")
    return dns.query.tcp(query, "127.0.0.1", timeout=1, port=port).rcode() == 0


@contextlib.contextmanager
def dns_server(zones: dict[str, str]) -> Iterator[DNSServer]:
    """NSD serving ``zones`` (zone name -> zone file text) on a free port."""
    binary = need_binary("nsd", "/usr/sbin/nsd")
    tmp = Path(tempfile.mkdtemp(prefix="conea-nsd-"))
    port = free_port()
    zone_config = ""
    for name, text in zones.items():
        (tmp / f"{name}.zone").write_text(text)
        zone_config += f"zone:\n    name: {name}\n    zonefile: {tmp / f'{name}.zone'}\n"
    (tmp / "nsd.conf").write_text(
        "server:\n"
        f"    ip-address: 127.0.0.1@{port}\n"
        f"    ip-address: ::1@{port}\n"
        '    username: ""\n'
        '    chroot: ""\n'
        f"    zonesdir: {tmp}\n"
        f"    pidfile: {tmp / 'nsd.pid'}\n"
        f"    xfrdfile: {tmp / 'xfrd.state'}\n"
        f"    xfrdir: {tmp}\n"
        f"    zonelistfile: {tmp / 'zone.list'}\n"
        f"    logfile: {tmp / 'nsd.log'}\n"
        '    database: ""\n'
        "    server-count: 1\n"
        "    hide-version: yes\n"
        "remote-control:\n"
        "    control-enable: no\n" + zone_config
    )
    proc = subprocess.Popen(
        [binary, "-d", "-c", str(tmp / "nsd.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp,
    )
    try:
        wait_for(lambda: _nsd_answers(port, next(iter(zones))), 20, "NSD")
        yield DNSServer(port, tmp)
    finally:
        stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
