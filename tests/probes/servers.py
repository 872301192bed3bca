"""Real servers for probe tests: targets (HTTP, HTTPS, TCP banner) and the service.

Targets run on an asyncio loop in a background thread; the service runs under a real
uvicorn server in another thread, built the way ``create_app`` builds it:
``app.state.probe_service = ProbeService.from_file(path, metrics)``, the ``/probe``
router included, ``aclose()`` at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import pathlib
import ssl
import tempfile
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import fastapi
import httpx
import trustme
import uvicorn
from aiohttp import web
from prometheus_client import parser
from prometheus_client.metrics_core import Metric

from monitor import metrics as service_metrics
from monitor.api import probe as probe_api
from monitor.probes import ProbeService
from tests.support import services

T = TypeVar("T")


class LoopThread:
    """An asyncio loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class Sent:
    """What the /huge route sent: bytes per response, and an event when one ended."""

    bytes: list[int]
    ended: threading.Event

    def wait(self) -> int:
        """Bytes sent by the last /huge response, once it has ended."""
        assert self.ended.wait(30), "the /huge response did not end"
        self.ended.clear()
        return self.bytes[-1]


HUGE = 512 << 20  # /huge's default body size: 512 MiB, generated as it is sent
LETTERS = 100_000  # /letters' body: that many "a", and no "b"


@dataclass
class Targets:
    http_port: int
    https_port: int
    banner_port: int
    mtls_port: int  # HTTPS that demands a client certificate from the CA
    silent_port: int  # accepts connections and never says a word
    letters_port: int  # sends one 60,000-letter line of "a" and hangs up
    sent: Sent
    ca: trustme.CA
    ca_file: pathlib.Path
    client_pem: pathlib.Path  # client key and certificate in one file
    not_after: datetime.datetime
    slow_seconds: float = 5.0

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def https(self) -> str:
        return f"https://localhost:{self.https_port}"


def _app(slow_seconds: float, sent: Sent) -> web.Application:
    async def ok(_request: web.Request) -> web.Response:
        return web.Response(text="status: healthy\n", headers={"X-Health": "green"})

    async def fail(_request: web.Request) -> web.Response:
        return web.Response(status=500, text="status: broken\n")

    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(slow_seconds)
        return web.Response(text="late\n")

    async def redirect(_request: web.Request) -> web.Response:
        raise web.HTTPFound("/ok")

    async def redirect_out(_request: web.Request) -> web.Response:
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")

    async def echo(request: web.Request) -> web.Response:
        body = await request.text()
        return web.Response(text=f"{request.method} {body}")

    async def huge(request: web.Request) -> web.StreamResponse:
        """``?bytes=N`` (512 MiB by default) of "a", made as they are sent, chunked or
        with a Content-Length (``&length=1``); counts what it could send."""
        total = int(request.query.get("bytes", HUGE))
        response = web.StreamResponse()
        if request.query.get("length"):
            response.content_length = total
        chunk = b"a" * 65536
        count = 0
        try:
            await response.prepare(request)
            while count < total:
                piece = chunk[: total - count]
                await response.write(piece)
                count += len(piece)
            await response.write_eof()
        except ConnectionError:
            pass  # the client stopped reading and hung up
        finally:
            sent.bytes.append(count)
            sent.ended.set()
        return response

    async def letters(_request: web.Request) -> web.Response:
        return web.Response(text="a" * LETTERS, headers={"X-Letters": "a" * 4000})

    async def redirect_to(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["url"])

    app = web.Application()
    app.router.add_get("/huge", huge)
    app.router.add_get("/letters", letters)
    app.router.add_get("/redirect-to", redirect_to)
    app.router.add_get("/ok", ok)
    app.router.add_get("/fail", fail)
    app.router.add_get("/slow", slow)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/redirect-out", redirect_out)
    app.router.add_route("*", "/echo", echo)
    return app


async def _banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        writer.write(b"SSH-2.0-conea-test\r\nPING :token42\r\n")
        await writer.drain()
        # A client that says nothing is hung up on after a second.
        line = await asyncio.wait_for(reader.readline(), 1.0)
        writer.write(b"GOT " + line)
        await writer.drain()
    except TimeoutError:
        pass
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


@contextlib.contextmanager
def targets(tmp: pathlib.Path, slow_seconds: float = 5.0) -> Iterator[Targets]:
    ca = trustme.CA()
    not_after = datetime.datetime(2031, 3, 4, 5, 6, 7, tzinfo=datetime.UTC)
    leaf = ca.issue_cert("localhost", "127.0.0.1", not_after=not_after)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(server_ctx)
    mtls_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(mtls_ctx)
    ca.configure_trust(mtls_ctx)
    mtls_ctx.verify_mode = ssl.CERT_REQUIRED
    ca_file = tmp / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    client_pem = tmp / "client.pem"
    ca.issue_cert("probe@conea.io").private_key_and_cert_chain_pem.write_to_path(str(client_pem))
    ports = [services.free_port() for _ in range(6)]
    sent = Sent([], threading.Event())
    lt = LoopThread()
    held: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    async def letters(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"a" * 60_000 + b"\r\n")
        await writer.drain()
        writer.close()

    async def start() -> tuple[web.AppRunner, list[asyncio.Server]]:
        runner = web.AppRunner(_app(slow_seconds, sent), shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", ports[0]).start()
        await web.TCPSite(runner, "127.0.0.1", ports[1], ssl_context=server_ctx).start()
        await web.TCPSite(runner, "127.0.0.1", ports[3], ssl_context=mtls_ctx).start()
        plain = [
            await asyncio.start_server(_banner, "127.0.0.1", ports[2]),
            await asyncio.start_server(silent, "127.0.0.1", ports[4]),
            await asyncio.start_server(letters, "127.0.0.1", ports[5]),
        ]
        return runner, plain

    async def stop(runner: web.AppRunner, plain: list[asyncio.Server]) -> None:
        for writer in held:
            writer.close()
        for server in plain:
            server.close()
            await server.wait_closed()
        await runner.cleanup()

    runner, plain = lt.run(start())
    try:
        yield Targets(
            http_port=ports[0],
            https_port=ports[1],
            banner_port=ports[2],
            mtls_port=ports[3],
            silent_port=ports[4],
            letters_port=ports[5],
            sent=sent,
            ca=ca,
            ca_file=ca_file,
            client_pem=client_pem,
            not_after=not_after,
            slow_seconds=slow_seconds,
        )
    finally:
        lt.run(stop(runner, plain))
        lt.close()


@dataclass
class Service:
    url: str
    probes: ProbeService
    metrics: service_metrics.Metrics

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def get(
        self, module: str, target: str, timeout: float | None = None, **params: str
    ) -> httpx.Response:
        headers = {}
        if timeout is not None:
            headers["X-Prometheus-Scrape-Timeout-Seconds"] = str(timeout)
        query = {"module": module, "target": target, **params}
        return httpx.get(f"{self.url}/probe", params=query, headers=headers, timeout=30)

    def probe(self, module: str, target: str, timeout: float | None = None) -> Probed:
        response = self.get(module, target, timeout)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        return Probed(response.text)

    def counted(self, module: str, result: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "conea_monitor_probes_total", {"module": module, "result": result}
        )
        return value or 0.0


class Probed:
    """A parsed /probe answer."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families: dict[str, Metric] = {
            f.name: f for f in parser.text_string_to_metric_families(text)
        }

    def value(self, name: str, **labels: str) -> float:
        family = self.families.get(name)
        assert family is not None, f"{name} missing from:\n{self.text}"
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
        raise AssertionError(f"no {name}{labels} in:\n{self.text}")

    @property
    def success(self) -> bool:
        return self.value("probe_success") == 1


def make_app(path: pathlib.Path | None, metrics: service_metrics.Metrics) -> fastapi.FastAPI:
    """What the lead's create_app does for probes."""

    @contextlib.asynccontextmanager
    async def lifespan(app: fastapi.FastAPI) -> AsyncIterator[None]:
        yield
        await app.state.probe_service.aclose()

    app = fastapi.FastAPI(lifespan=lifespan)
    app.state.probe_service = ProbeService.from_file(path, metrics)
    app.include_router(probe_api.router)
    return app


@contextlib.contextmanager
def serve(app: fastapi.FastAPI) -> Iterator[str]:
    port = services.free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        services.wait_for(lambda: server.started, 20, "probe service")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)


@contextlib.contextmanager
def service(config_text: str | None) -> Iterator[Service]:
    with tempfile.TemporaryDirectory(prefix="conea-probes-") as tmp:
        path = None
        if config_text is not None:
            path = pathlib.Path(tmp) / "probes.yml"
            path.write_text(config_text)
        metrics = service_metrics.Metrics()
        app = make_app(path, metrics)
        with serve(app) as url:
            yield Service(url, app.state.probe_service, metrics)
