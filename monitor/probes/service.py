"""The probe runner behind ``/probe``: module lookup, safety checks, deadline, metrics.

``ProbeService.probe(module, target, scrape_timeout, debug, own)`` returns a
:class:`Result` (its fresh recorder, success, trace) or raises
:class:`~monitor.errors.ProbeError` (unknown module, bad or disallowed target, bad
timeout header: a 400) or :class:`TooManyProbes` (the concurrency cap: a 503). A
target that reaches the service itself (``own``, where the request arrived; see
:mod:`monitor.probes.guard`) is refused whatever the allowlist says: the result has
``probe_success 0`` and the reason in its trace and the log.
"""

from __future__ import annotations

import asyncio
import logging
import pathlib
import ssl
import time
from dataclasses import dataclass
from typing import Any

import yaml

from monitor import metrics as service_metrics
from monitor.errors import ConfigError, ProbeError
from monitor.probes import (
    config,
    context,
    defaults,
    guard,
    output,
    probers,
    sessions,
    targets,
    tls,
)

log = logging.getLogger(__name__)


MAX_CACHED_TARGETS = 10_000  # admitted targets remembered (then forgotten all at once)
MAX_CACHED_TARGET = 512  # characters: longer targets are checked every time


class TooManyProbes(ProbeError):
    """The cap on concurrent probes is reached; the caller should answer 503."""


@dataclass
class Result:
    module: str
    target: str
    success: bool
    duration: float
    timeout: float
    recorder: output.Recorder
    trace: output.Trace
    refused: bool = False  # the target was this service itself

    def exposition(self) -> bytes:
        """The probe's metrics in the Prometheus text format (what
        ``prometheus_client.generate_latest`` gives for the recorder, only faster)."""
        return self.recorder.render()


class ProbeService:
    """Probe modules of one service, with the shared client sessions."""

    def __init__(
        self, probes: config.ProbesFile, metrics: service_metrics.Metrics, source: str
    ) -> None:
        _check_tls(source, probes)
        self.config = probes
        self.metrics = metrics
        self.source = source
        self.clients = sessions.Clients()
        self.in_flight = 0
        self._counters: dict[tuple[str, str], Any] = {}
        # (module, target) -> the target parsed and admitted by the module's allowlist:
        # Prometheus asks for the same targets at every scrape. Emptied on reload.
        self._admitted: dict[tuple[str, str], targets.Target] = {}

    @classmethod
    def from_file(cls, path: pathlib.Path | None, metrics: service_metrics.Metrics) -> ProbeService:
        """Load modules from ``path``, or the built-in defaults when it is None."""
        return cls(_read(path), metrics, str(path) if path else "built-in")

    def reload(self, path: pathlib.Path | None) -> None:
        """Swap in the modules of ``path``; on a ConfigError the current ones stay.
        Probes already running finish with the module they started with."""
        probes = _read(path)
        _check_tls(str(path) if path else "built-in", probes)
        self.config = probes
        self.source = str(path) if path else "built-in"
        self._admitted = {}

    def _count(self, module: str, result: str) -> None:
        counter = self._counters.get((module, result))
        if counter is None:
            counter = self.metrics.probes.labels(module, result)
            self._counters[(module, result)] = counter
        counter.inc()

    async def aclose(self) -> None:
        await self.clients.aclose()

    def timeout(self, module: config.Module, scrape_timeout: str | None) -> float:
        """blackbox_exporter's rule: the scrape timeout minus the offset, capped by the
        module's timeout; without the header, the module's or the default timeout."""
        if scrape_timeout is None or scrape_timeout == "":
            return module.timeout or self.config.default_timeout
        try:
            seconds = float(scrape_timeout)
        except ValueError:
            raise ProbeError(
                f"X-Prometheus-Scrape-Timeout-Seconds {scrape_timeout!r} is not a number"
            ) from None
        if not seconds > 0 or seconds == float("inf"):
            raise ProbeError(
                f"X-Prometheus-Scrape-Timeout-Seconds {scrape_timeout!r} must be positive"
            )
        usable = seconds - self.config.timeout_offset
        if usable <= 0:
            usable = seconds / 2
        return min(usable, module.timeout) if module.timeout else usable

    async def probe(
        self,
        module_name: str | None,
        target: str | None,
        *,
        scrape_timeout: str | None = None,
        debug: bool = False,
        own: guard.Own | None = None,
    ) -> Result:
        module = self.config.modules.get(module_name or "")
        if module is None:
            self._count("unknown", "rejected")
            if not module_name:
                raise ProbeError("module parameter is missing")
            known = ", ".join(sorted(self.config.modules))
            raise ProbeError(f"unknown module {module_name!r} (known: {known})")
        name = module_name or ""
        allow = self.config.allow_for(name)
        try:
            parsed = self._admit(name, module, allow, target or "")
            timeout = self.timeout(module, scrape_timeout)
        except ProbeError:
            self._count(name, "rejected")
            raise
        cap = self.config.max_concurrent_probes
        if self.in_flight >= cap:
            self._count(name, "rejected")
            raise TooManyProbes(
                f"too many probes in flight ({cap}, max_concurrent_probes); "
                "retry later or raise the limit"
            )
        self.in_flight += 1
        self.metrics.probes_in_flight.inc()
        try:
            result = await self._run(name, module, allow, parsed, timeout, debug, own)
        finally:
            self.in_flight -= 1
            self.metrics.probes_in_flight.dec()
        outcome = "rejected" if result.refused else "success" if result.success else "failure"
        self._count(name, outcome)
        return result

    def _admit(
        self, name: str, module: config.Module, allow: config.Allow, raw: str
    ) -> targets.Target:
        """``raw`` parsed for the module's prober and admitted by its allowlist, or a
        ProbeError; a target admitted before is taken from the cache."""
        key = (name, raw)
        parsed = self._admitted.get(key)
        if parsed is None:
            parsed = targets.parse(module.prober, raw)
            targets.check(allow, name, parsed)
            if len(raw) <= MAX_CACHED_TARGET:
                if len(self._admitted) >= MAX_CACHED_TARGETS:
                    self._admitted.clear()
                self._admitted[key] = parsed
        return parsed

    async def _run(
        self,
        name: str,
        module: config.Module,
        allow: config.Allow,
        target: targets.Target,
        seconds: float,
        debug: bool,
        own: guard.Own | None,
    ) -> Result:
        timeout = seconds
        recorder = output.Recorder()  # no registry: render() writes the exposition
        trace = output.Trace(debug)
        trace(
            f"beginning probe: module={name} prober={module.prober} "
            f"target={target.raw} timeout_seconds={timeout:g}"
        )
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        p = context.Probe(
            target=target,
            module_name=name,
            module=module,
            allow=allow,
            out=recorder,
            trace=trace,
            deadline=loop.time() + timeout,
            clients=self.clients,
            own=own,
        )
        refused = False
        try:
            async with asyncio.timeout(timeout):
                await guard.check(own, target)
                success = await probers.PROBERS[module.prober](p)
        except guard.OwnAddress as exc:
            log.warning("probe refused: module %s: %s", name, exc)
            trace(f"refused: {exc}")
            success, refused = False, True
        except TimeoutError:
            trace(f"timeout: the probe did not finish within {timeout:g}s")
            success = False
        except Exception as exc:  # a prober bug must not become a traceback to Prometheus
            log.exception("prober %s failed on module %s", module.prober, name)
            trace(f"internal error: {type(exc).__name__}")
            success = False
        duration = time.perf_counter() - start
        recorder.gauge(
            "probe_duration_seconds",
            "Returns how long the probe took to complete in seconds",
            duration,
        )
        recorder.gauge("probe_success", "Displays whether or not the probe was a success", success)
        trace(f"probe {'succeeded' if success else 'failed'}: duration_seconds={duration:.6f}")
        return Result(name, target.raw, success, duration, timeout, recorder, trace, refused)

    def module_yaml(self, name: str) -> str:
        """The module's effective configuration, for the debug page."""
        module = self.config.modules[name]
        data = module.model_dump(mode="json", exclude_none=True)
        data["allow"] = self.config.allow_for(name).model_dump(mode="json")
        return yaml.safe_dump({name: data}, sort_keys=False)


def _read(path: pathlib.Path | None) -> config.ProbesFile:
    if path is None:
        return config.parse(defaults.TEXT, "<built-in probes>")
    return config.load(path)


def _check_tls(source: str, probes: config.ProbesFile) -> None:
    """Build every module's SSL context now, so a bad certificate fails the load."""
    for name, module in probes.modules.items():
        settings = getattr(module.section(), "tls_config", None)
        if settings is None:
            continue
        try:
            tls.context(settings)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"{source}: modules.{name}.{module.prober}.tls_config: cannot load: {exc}"
            ) from exc
