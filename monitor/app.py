"""``create_app(settings)``: the FastAPI application, with everything built from settings.

Nothing is read or connected at import time; the lifespan connects the store, applies
migrations, starts the writer thread, and on the way out drains in-flight work.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp
from swagger_ui_bundle import swagger_ui_path

from monitor import heartbeat, wiring, yamlfile
from monitor.api import admin, approvals, docs, health, probe, query, report, webhook
from monitor.api.errors import problem
from monitor.auth import Authenticator
from monitor.metrics import Metrics
from monitor.probes import ProbeService
from monitor.runtime import Runtime
from monitor.settings import Settings
from monitor.store import database, presence
from monitor.store.notifications import NotificationWriter
from monitor.ui import routes as ui_routes
from monitor.version import __version__

log = logging.getLogger("monitor")


def create_app(settings: Settings, metrics: Metrics | None = None) -> FastAPI:
    metrics = metrics or Metrics()
    metrics.build_info.info({"version": __version__})
    auth = Authenticator(settings)  # reads credential files now: a bad path fails at start
    probes_file = settings.resolve(settings.probes_file) if settings.probes_file else None
    probe_service = ProbeService.from_file(probes_file, metrics)  # a bad file fails at start

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = database.connect(
            settings.database_url,
            sqlite_synchronous=settings.store.sqlite_synchronous,
            pool_size=settings.store.pool_size,
        )
        database.migrate(db)
        writer = NotificationWriter(
            db,
            max_batch_alerts=settings.store.batch_max_alerts,
            write_timeout=settings.store.write_timeout_seconds,
            on_error=lambda exc: metrics.store_errors.labels("write_notification").inc(),
        )
        writer.start()
        rt = Runtime(settings=settings, metrics=metrics, db=db, writer=writer, auth=auth)
        rt.heartbeats.append(writer.heartbeat)
        app.state.runtime = rt
        rt.extras["probe_service"] = probe_service
        log.info("store: %s", database.redact(db))
        (log.warning if auth.open_to_loopback_only else log.info)("%s", auth.describe())
        (log.info if auth.reading_needs_credentials else log.warning)("%s", auth.describe_reading())
        log.info("%s", auth.describe_operator())
        checkpoints = asyncio.get_running_loop().create_task(_checkpoints(rt))
        beats = asyncio.get_running_loop().create_task(_beats(rt))
        try:
            await wiring.start(rt)
            for hook in app.state.startup_hooks:
                await hook(rt)
            _watch_sighup(rt)
            _redispatch(rt)
            gc.freeze()  # start-up objects need no more collecting: shorter GC pauses
            gc.set_threshold(50_000, 20, 20)  # requests allocate much and keep little
            yield
        finally:
            checkpoints.cancel()
            beats.cancel()
            _unwatch_sighup()
            for hook in reversed(app.state.shutdown_hooks):
                await hook(rt)
            await rt.drain(within=SHUTDOWN_DECIDING)
            await wiring.stop(rt)
            with contextlib.suppress(TimeoutError):  # a store that hangs delays no stop
                await asyncio.wait_for(_beat(rt, stopped=True), 1.0)
            await probe_service.aclose()
            writer.stop()
            db.dispose()

    app = _App(
        title="conea-monitor",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,  # /docs and /openapi.json need a viewer: monitor/api/docs.py
        openapi_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.probe_service = probe_service
    app.state.metrics = metrics
    app.state.startup_hooks = []
    app.state.shutdown_hooks = []

    def heartbeats() -> list[heartbeat.Heartbeat]:
        rt: Runtime | None = getattr(app.state, "runtime", None)
        return rt.heartbeats if rt is not None else []

    metrics.registry.register(heartbeat.Collector(heartbeats))
    app.include_router(health.router)
    app.include_router(webhook.router)
    app.include_router(query.router)
    app.include_router(admin.router)
    app.include_router(approvals.router)
    app.include_router(probe.router)
    app.include_router(report.router)
    app.include_router(docs.router)
    app.mount(docs.ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")
    app.include_router(ui_routes.router)
    app.mount("/ui/static", StaticFiles(packages=[("monitor.ui", "static")]), name="ui-static")

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> object:
        details = [
            {"field": yamlfile.dotted(e["loc"]), "reason": str(e["msg"])} for e in exc.errors()
        ]
        return problem(422, "invalid request", details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> object:
        return problem(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> object:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, f"internal error ({type(exc).__name__}); see the service log")

    return app


class _App(FastAPI):
    def build_middleware_stack(self) -> ASGIApp:
        # POST /webhook/alertmanager and GET /probe are answered before the middleware
        # and routing (monitor/api/webhook.py, monitor/api/probe.py)
        return webhook.in_front(probe.in_front(super().build_middleware_stack()))


async def _checkpoints(rt: Runtime, every: float = 2.0) -> None:
    """SQLite's WAL is checkpointed here, off the request path."""
    while True:
        await asyncio.sleep(every)
        try:
            await rt.store.checkpoint()
        except Exception as exc:  # a failed checkpoint is retried at the next round
            rt.metrics.store_errors.labels("checkpoint").inc()
            log.warning("WAL checkpoint failed: %s", exc)


async def _beats(rt: Runtime, every: float = presence.BEAT_SECONDS) -> None:
    """The service's heartbeat in the store: the command line, opening a store directly,
    asks whether a running service uses it (monitor.store.presence)."""
    while True:
        await _beat(rt)
        await asyncio.sleep(every)


async def _beat(rt: Runtime, stopped: bool = False) -> None:
    who = {"host": socket.gethostname(), "pid": os.getpid(), "public_url": rt.settings.public_url}
    try:
        await asyncio.to_thread(presence.beat, rt.db, datetime.now(UTC), who, stopped=stopped)
    except Exception as exc:  # the next beat tries again; only the CLI's warning depends on it
        rt.metrics.store_errors.labels("heartbeat").inc()
        log.warning("heartbeat not written: %s", exc)


def _watch_sighup(rt: Runtime) -> None:
    """SIGHUP reloads the policies, as it does for Prometheus and Alertmanager."""
    loop = asyncio.get_running_loop()

    def on_hup() -> None:
        task = loop.create_task(wiring.reload(rt))
        rt.extras["reload_task"] = task

    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGHUP, on_hup)


def _unwatch_sighup() -> None:
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)


SHUTDOWN_DECIDING = 2.0  # seconds the batch in hand gets to commit at a stop


def _redispatch(rt: Runtime) -> None:
    """Start the engine's consumer: notifications answered 200 but not decided before a
    stop are decided first, a batch at a time (poisoned ones stay parked)."""
    rt.start()
