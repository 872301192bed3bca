"""The demo HTTP service: an API whose error ratio, latency and health the caller controls.

It stands in for ``conea-api``. Prometheus scrapes ``/metrics``:

* ``http_requests_total{method, route, status}``
* ``http_request_duration_seconds{method, route}`` (histogram, le buckets)

The namespace/job/service labels the shipped rules aggregate by come from the scrape
config, as they do in a cluster. ``GET /api/items`` is the endpoint the load generator
hits; ``GET /healthz`` is what the probe checks; ``POST /control`` with
``{"error_ratio": 0.5, "latency_ms": 800, "healthy": false}`` (any subset) changes how
it behaves. Errors are spread evenly (every second request at 0.5), not random, so a
ratio is exact even at low request rates.

:class:`Demo` runs the server and a load generator on an event loop in a thread of its
own, so a synchronous test or script can drive it; ``stop()`` closes everything.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass
class Behaviour:
    error_ratio: float = 0.0
    latency_ms: float = 0.0
    healthy: bool = True


class DemoApp:
    """The aiohttp application and its state."""

    def __init__(self) -> None:
        self.behaviour = Behaviour()
        self._owed = 0.0  # error "debt": one error each time it reaches 1
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests answered, by method, route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request.",
            ["method", "route"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.app = web.Application()
        self.app.add_routes(
            [
                web.get("/api/items", self.items),
                web.get("/healthz", self.healthz),
                web.get("/metrics", self.metrics),
                web.post("/control", self.control),
                web.get("/control", self.show),
            ]
        )

    def _fail_next(self) -> bool:
        self._owed += self.behaviour.error_ratio
        if self._owed >= 1.0:
            self._owed -= 1.0
            return True
        return False

    async def items(self, request: web.Request) -> web.Response:
        with self.duration.labels("GET", "/api/items").time():
            if self.behaviour.latency_ms > 0:
                await asyncio.sleep(self.behaviour.latency_ms / 1000)
            status = 500 if self._fail_next() else 200
            self.requests.labels("GET", "/api/items", str(status)).inc()
        if status == 500:
            return web.json_response({"error": "upstream overloaded"}, status=500)
        return web.json_response({"items": [1, 2, 3]})

    async def healthz(self, request: web.Request) -> web.Response:
        if not self.behaviour.healthy:
            return web.Response(status=503, text="unhealthy\n")
        return web.Response(text="ok\n")

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def control(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "the body must be JSON"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"error": "the body must be a JSON object"}, status=400)
        unknown = sorted(set(body) - {"error_ratio", "latency_ms", "healthy"})
        if unknown:
            return web.json_response({"error": f"unknown keys: {', '.join(unknown)}"}, status=400)
        try:
            self.set(**body)
        except (TypeError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return await self.show(request)

    async def show(self, request: web.Request) -> web.Response:
        b = self.behaviour
        return web.json_response(
            {"error_ratio": b.error_ratio, "latency_ms": b.latency_ms, "healthy": b.healthy}
        )

    def set(
        self,
        error_ratio: float | None = None,
        latency_ms: float | None = None,
        healthy: bool | None = None,
    ) -> None:
        if error_ratio is not None:
            if not isinstance(error_ratio, int | float) or not 0 <= error_ratio <= 1:
                raise ValueError(f"error_ratio must be a number from 0 to 1, not {error_ratio!r}")
            self.behaviour.error_ratio = float(error_ratio)
        if latency_ms is not None:
            if not isinstance(latency_ms, int | float) or latency_ms < 0:
                raise ValueError(f"latency_ms must be a number >= 0, not {latency_ms!r}")
            self.behaviour.latency_ms = float(latency_ms)
        if healthy is not None:
            if not isinstance(healthy, bool):
                raise ValueError(f"healthy must be true or false, not {healthy!r}")
            self.behaviour.healthy = healthy


async def generate_load(url: str, rate: float, stop: asyncio.Event) -> None:
    """GET ``url`` ``rate`` times a second until ``stop`` is set (answers are ignored);
    a rate of 0 sends nothing."""
    if rate <= 0:
        await stop.wait()
        return
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        pending: set[asyncio.Task[None]] = set()

        async def one() -> None:
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                async with session.get(url) as response:
                    await response.read()

        while not stop.is_set():
            task = asyncio.ensure_future(one())
            pending.add(task)
            task.add_done_callback(pending.discard)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 1 / rate)
        if pending:
            await asyncio.wait(pending)


class Demo:
    """The demo service and its load generator on a private event loop in a thread."""

    def __init__(self, port: int, rate: float = 20.0) -> None:
        self.port = port
        self.rate = rate
        self.app = DemoApp()
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set(self, **behaviour: float | bool) -> None:
        """Change the behaviour (thread-safe: runs on the demo's loop)."""

        async def change() -> None:
            self.app.set(**behaviour)  # type: ignore[arg-type]

        asyncio.run_coroutine_threadsafe(change(), self._loop).result(10)

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        runner = web.AppRunner(self.app.app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", self.port)
            await site.start()
            self._ready.set()
            await generate_load(f"{self.url}/api/items", self.rate, self._stop)
        finally:
            await runner.cleanup()

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="demo-api", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise RuntimeError(f"the demo service did not start: {self._error}") from self._error

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        self._thread = None
        self._loop.close()


@contextlib.contextmanager
def running(port: int, rate: float = 20.0) -> Iterator[Demo]:
    demo = Demo(port, rate)
    demo.start()
    try:
        yield demo
    finally:
        demo.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="The conea-monitor demo API with its load.")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--rate", type=float, default=20.0, help="load: requests per second")
    args = parser.parse_args()
    with running(args.port, args.rate) as demo:
        print(f"demo API on {demo.url} (POST {demo.url}/control to change it); Ctrl-C stops")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
