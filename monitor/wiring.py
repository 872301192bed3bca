"""Building the parts of a running service from its settings, and reloading policies.

``start(rt)`` runs in the app's lifespan: the action registry, the policies (a bad file
stops the start with every error listed), the clients the actions use, the engine and
its timers, the maintenance jobs; it logs what is on and off (:mod:`monitor.summary`).
``reload(rt)`` re-reads the policies; a bad file keeps the last good policies running,
logs why and sets ``conea_monitor_config_last_reload_successful`` to 0. After both, the
permission check (:mod:`monitor.k8s.access`) runs in the background: what the cluster
denies is logged, listed by ``/readyz`` and skips the policies concerned (the guardrail
``permission``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection
from datetime import datetime
from typing import Any

import httpx

from monitor import jobs, policy, reachability, summary
from monitor import scope as scope_mod
from monitor.actions import Registry, Services, default_registry
from monitor.engine.core import Engine
from monitor.engine.firing import FiringCheck
from monitor.engine.verifier import Verifier
from monitor.errors import ConfigError
from monitor.k8s import access
from monitor.k8s import client as k8s_client
from monitor.metrics import Metrics
from monitor.policy import crossref
from monitor.runtime import Runtime
from monitor.settings import Settings
from monitor.store.facade import Store
from monitor.store.records import Audit

log = logging.getLogger("monitor")


def load_policies(
    settings: Settings, registry: Registry, *, resolve: bool = True
) -> policy.PolicySet:
    """The configured policies. With ``resolve`` (the service, ``check``), a notifier or
    PostgreSQL target the settings lack fails here, not at the alert; commands that only
    read the actions' names (``rbac``) leave that out."""
    paths = [settings.resolve(p) for p in settings.policies]
    policies = policy.load(paths, registry, strict_actions=True)
    if resolve:
        configured = crossref.Configured(settings.notifiers, settings.postgres_targets)
        crossref.ensure(policies, registry, configured)
    return policies


def kube_client(settings: Settings) -> Any:
    """The Kubernetes client, checking namespaces with the scope the engine's guardrail
    uses (:mod:`monitor.scope`)."""
    k = settings.kubernetes
    if k.mode == "none":
        return None
    automation = settings.automation
    scope = scope_mod.Scope.of(automation.namespaces_allow, automation.namespaces_deny)
    if k.mode == "in-cluster":
        return k8s_client.from_settings(None, None, True, scope=scope)
    kubeconfig = str(settings.resolve(k.kubeconfig)) if k.kubeconfig else None
    return k8s_client.from_settings(kubeconfig, k.context, False, scope=scope)


def permission_needs(
    policies: policy.PolicySet,
    registry: Registry,
    scope: scope_mod.Scope,
    release_namespace: str,
) -> dict[str, list[access.Need]]:
    """What each policy's actions need of the cluster, in the namespaces it acts in."""
    from monitor.actions import rbac

    wanted = {}
    for p in policies:
        names = p.action_names()
        if p.spec.target.get("resolve") == "owner":
            names.add(rbac.RESOLVE_OWNER)
        grants = rbac.needed(registry, [(names, p.spec.target)])
        if grants:
            target_namespace = str(p.spec.target.get("namespace", ""))
            spaces = access.namespaces(target_namespace, scope, release_namespace)
            wanted[p.name] = [access.Need(v, g, r, ns) for v, g, r in grants for ns in spaces]
    return wanted


async def check_permissions(rt: Runtime, engine: Engine) -> list[access.Finding]:
    """Ask the cluster; record what it denies for the guardrail and ``/readyz``."""
    kube = engine.services.kube
    if kube is None:
        return []
    wanted = permission_needs(
        engine.policies, engine.registry, engine.parts.scope, access.release_namespace()
    )
    findings = await access.check(kube, wanted)
    engine.parts.denied = access.denied(findings)
    rt.extras["permissions"] = [str(f) for f in findings]
    for finding in findings:
        log.warning("permission check: %s", finding)
    if not findings and wanted:
        log.info("permission check: the cluster grants what the %d policies need", len(wanted))
    return findings


def _check_permissions_soon(rt: Runtime, engine: Engine) -> None:
    """The permission check in the background (readiness never waits for it); its task
    is ``rt.extras["permission_check"]``."""
    previous = rt.extras.get("permission_check")
    if previous is not None:
        previous.cancel()

    async def run() -> None:
        try:
            await check_permissions(rt, engine)
        except Exception:
            log.exception("permission check failed")

    rt.extras["permission_check"] = asyncio.create_task(run())


async def check_reachability(rt: Runtime) -> list[reachability.Reach]:
    """Try what the settings name; log each answer, keep the failures for ``/readyz``."""
    found = await reachability.check(rt.settings)
    rt.extras["unreachable"] = [str(r) for r in found if r.problem is not None]
    for reach in found:
        if reach.problem is None:
            log.info("start-up check: %s", reach)
        else:
            log.warning("start-up check: %s", reach)
    return found


def _check_reachability_soon(rt: Runtime) -> None:
    """:func:`check_reachability` in the background, as ``rt.extras["reachability"]``."""

    async def run() -> None:
        try:
            await check_reachability(rt)
        except Exception:
            log.exception("reachability check failed")

    rt.extras["reachability"] = asyncio.create_task(run())


def build_registry(settings: Settings) -> Registry:
    registry = default_registry()
    defined: dict[str, Collection[str]] = {
        "notifiers": settings.notifiers,
        "postgres_targets": settings.postgres_targets,
    }
    jobs.ensure_valid(settings.jobs, registry, defined=defined)
    return registry


def build_engine(settings: Settings, db: Any, metrics: Metrics) -> Engine:
    """The engine and the clients its actions use, from the settings (no I/O started)."""
    registry = build_registry(settings)
    policies = load_policies(settings, registry)
    kube = kube_client(settings)
    http = httpx.AsyncClient(timeout=10.0)
    verifier = Verifier(settings.prometheus_url) if settings.prometheus_url else None
    services = Services(
        kube=kube,
        http=http,
        postgres=settings.postgres_targets,
        prometheus=verifier,
        notifiers=settings.notifiers,
        public_url=settings.public_url.rstrip("/"),
    )
    return Engine(
        store=Store(db),
        policies=policies,
        registry=registry,
        services=services,
        metrics=metrics,
        automation=settings.automation,
        firing=FiringCheck(settings.alertmanager_url, verifier, http),
        verifier=verifier,
        dry_run=settings.automation.rehearsal(kube is not None),
    )


async def start(rt: Runtime) -> None:
    settings = rt.settings
    engine = build_engine(settings, rt.db, rt.metrics)
    registry, services, policies = engine.registry, engine.services, engine.policies
    kube, dry_run = services.kube, engine.dry_run
    rt.handler = engine.decide_batch
    rt.handler_marks = True  # a batch's commit marks its notifications processed
    rt.prefer = engine.urgent
    rt.owner = engine.parts.owner
    rt.matcher = lambda labels: engine.policies.match(labels)
    rt.extras["engine"] = engine
    rt.extras["breaker"] = engine.breaker
    _loaded(rt, policies)
    for line in summary.lines(settings, kube=kube is not None, rehearsal=dry_run):
        log.info("%s", line)
    if kube is None:
        log.warning("no Kubernetes credentials: Kubernetes actions cannot run")
    approval = settings.automation.approval
    if settings.automation.mode == "approval" and approval.notifier is None:
        log.warning(
            "approval mode without automation.approval.notifier: requests are only in the "
            "API (state awaiting_approval); answer them with the API or `conea-monitor approve`"
        )
    if dry_run:
        log.warning(
            "rehearsal mode: remediations are planned, verified and recorded, never applied "
            "(automation.mode: live to act)"
        )
    await engine.start(settings.verify_sweep_seconds)
    _check_permissions_soon(rt, engine)
    _check_reachability_soon(rt)
    if settings.jobs:
        url = settings.database_url
        election: jobs.Leader = (
            jobs.PostgresLeader(jobs.conninfo_from_url(url))
            if url.startswith("postgres")
            else jobs.AlwaysLeader()
        )

        async def record(
            name: str,
            started: datetime,
            duration: float,
            outcome: str,
            summary: str,
            details: dict[str, Any],
        ) -> None:
            await rt.store.record(
                Audit(
                    started,
                    "job",
                    f"job {name!r}: {summary}",
                    outcome=outcome,
                    details={"duration_seconds": duration, **details},
                )
            )

        runner = jobs.JobRunner(
            registry,
            services,
            metrics=rt.metrics,
            record=record,
            election=election,
            paused=lambda: engine.paused_cached,
            dry_run=lambda: engine.dry_run,
        )
        scheduler = jobs.JobScheduler(settings.jobs, runner)
        scheduler.start()
        rt.extras["jobs"] = scheduler


SHUTDOWN_ACTING = 4.0  # seconds steps in flight get at a stop before being interrupted


async def stop(rt: Runtime) -> None:
    for background in ("permission_check", "reachability"):
        checking = rt.extras.get(background)
        if checking is not None:
            checking.cancel()
    scheduler = rt.extras.get("jobs")
    if scheduler is not None:
        await scheduler.shutdown()
    engine: Engine | None = rt.extras.get("engine")
    if engine is not None:
        await engine.stop(within=SHUTDOWN_ACTING)
        services = engine.services
        await services.http.aclose()
        if services.prometheus is not None:
            services.prometheus.close()
        if services.kube is not None:
            services.kube.close()


def _loaded(rt: Runtime, policies: policy.PolicySet) -> None:
    rt.metrics.config_reload_ok.set(1)
    rt.metrics.config_reload_time.set(time.time())
    rt.metrics.policies_loaded.set(len(policies))
    rt.config_loaded = True
    log.info(
        "loaded %d remediation policies from %s",
        len(policies),
        ", ".join(map(str, policies.sources)) or "nothing",
    )


async def reload(rt: Runtime, by: str = "SIGHUP") -> tuple[bool, list[str]]:
    """Re-read the policies; on any error keep the running ones and say why. ``by`` (who
    asked: an identity's name, or SIGHUP) goes into the audit record's details."""
    engine: Engine | None = rt.extras.get("engine")
    if engine is None:
        return False, ["the engine is not running"]
    try:
        policies = await asyncio.to_thread(load_policies, rt.settings, engine.registry)
        probes = rt.extras.get("probe_service")
        if probes is not None and rt.settings.probes_file is not None:
            probes.reload(rt.settings.resolve(rt.settings.probes_file))
    except (policy.PolicyLoadError, ConfigError) as exc:
        errors = exc.errors if isinstance(exc, policy.PolicyLoadError) else [str(exc)]
        rt.metrics.config_reload_ok.set(0)
        log.error("reload failed; keeping the last good policies:\n%s", "\n".join(errors))
        await rt.store.record(
            Audit(
                engine.clock.now(),
                "reload",
                "reload failed; the last good policies stay in force",
                outcome="failed",
                details={"errors": errors, "by": by},
            )
        )
        return False, errors
    engine.policies = policies
    _loaded(rt, policies)
    _check_permissions_soon(rt, engine)
    await rt.store.record(
        Audit(
            engine.clock.now(),
            "reload",
            f"loaded {len(policies)} policies",
            outcome="succeeded",
            details={"by": by},
        )
    )
    return True, []
