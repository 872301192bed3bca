"""The ``conea-monitor`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from monitor import settings as settings_mod
from monitor.client import ServiceError
from monitor.errors import MonitorError

Command = Callable[[argparse.Namespace], int]


def _load(args: argparse.Namespace) -> settings_mod.Settings:
    return settings_mod.load(args.config)


def server_config(app: Any, settings: settings_mod.Settings, host: str, port: int) -> Any:
    """The ``uvicorn.Config`` the service runs with.

    X-Forwarded-For / X-Forwarded-Proto are believed only from ``server.trusted_proxies``
    (uvicorn's proxy_headers and forwarded_allow_ips, whatever FORWARDED_ALLOW_IPS says):
    with none configured the client is the TCP peer, and a header claiming 127.0.0.1 is
    ignored.
    """
    import uvicorn

    trusted = [str(net) for net in settings.server.trusted_proxies]
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        # SIGTERM: requests in flight get 2 s, then the engine stops (monitor.app): the
        # whole service is gone within 10 s, whatever the backlog.
        timeout_graceful_shutdown=2,
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted,
    )


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from monitor import logs
    from monitor.app import create_app

    settings = _load(args)
    logs.configure(settings.log.level, settings.log.format)
    app = create_app(settings)
    server = uvicorn.Server(server_config(app, settings, args.host, args.port))
    server.run()
    return 0 if server.started else 3  # as uvicorn.run: 3 when it could not start


def cmd_history(args: argparse.Namespace) -> int:
    from monitor import operating

    return operating.history(args)


def cmd_check(args: argparse.Namespace) -> int:
    from monitor import wiring
    from monitor.policy import cli as policy_cli
    from monitor.policy import crossref

    configured = None

    if args.config or not args.paths:
        settings = _load(args)  # the settings file is checked too, and the probe modules
        if settings.probes_file is not None:
            from monitor.metrics import Metrics
            from monitor.probes import ProbeService

            ProbeService.from_file(settings.resolve(settings.probes_file), Metrics())
        registry = wiring.build_registry(settings)
        paths = args.paths or [str(settings.resolve(p)) for p in settings.policies]
        configured = crossref.Configured(settings.notifiers, settings.postgres_targets)
    else:
        from monitor.actions import default_registry

        registry = default_registry()
        paths = args.paths
    status = policy_cli.check(
        paths,
        registry=registry,
        strict_actions=True,
        configured=configured,
        rule_paths=args.rules or (),
        prometheus=args.prometheus,
        strict=args.strict,
    )
    if args.cluster and status == 0:
        return _check_cluster(args)
    return status


def _check_cluster(args: argparse.Namespace) -> int:
    """``check --cluster``: ask the cluster whether it grants what the policies need
    (a SelfSubjectAccessReview each); 1 when anything is denied or unknown."""
    import asyncio

    from monitor import scope, wiring
    from monitor.k8s import access

    settings = _load(args)
    kube = wiring.kube_client(settings)
    if kube is None:
        raise MonitorError("check --cluster: no Kubernetes credentials (kubernetes.mode)")
    try:
        registry = wiring.build_registry(settings)
        automation = settings.automation
        wanted = wiring.permission_needs(
            wiring.load_policies(settings, registry),
            registry,
            scope.Scope.of(automation.namespaces_allow, automation.namespaces_deny),
            access.release_namespace(),
        )
        findings = asyncio.run(access.check(kube, wanted))
    finally:
        kube.close()
    for finding in findings:
        print(finding)
    reviewed = len({need for needs in wanted.values() for need in needs})
    if findings:
        print(f"FAILED: {len(findings)} of the policies' permissions not granted")
        return 1
    print(f"SUCCESS: the cluster grants all {reviewed} permissions the policies need")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from monitor.policy import cli as policy_cli

    print(policy_cli.schema())
    return 0


def _engine_offline(settings: settings_mod.Settings) -> Any:
    """An engine over the store and live clients, for commands that only read."""
    from monitor import wiring
    from monitor.metrics import Metrics
    from monitor.store import database

    db = database.connect(settings.database_url)
    database.migrate(db)
    return wiring.build_engine(settings, db, Metrics())


def cmd_explain(args: argparse.Namespace) -> int:
    import asyncio
    import json
    from pathlib import Path

    from monitor.alerts import payload
    from monitor.engine import explain

    try:
        body = Path(args.alert).read_bytes()
    except OSError as exc:
        print(f"conea-monitor: error: cannot read {args.alert!r}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        notification = payload.parse(body)
    except payload.PayloadError as exc:
        print(f"conea-monitor: error: {args.alert}: {exc.message}", file=sys.stderr)
        for d in exc.details:
            print(f"  {d['field']}: {d['reason']}", file=sys.stderr)
        return 2
    engine = _engine_offline(_load(args))

    async def run() -> list[dict[str, Any]]:
        try:
            return await explain.explain(engine, notification)
        finally:
            await engine.services.http.aclose()

    try:
        report = asyncio.run(run())
    finally:
        engine.store.handle.dispose()
    print(json.dumps(report, indent=2, default=str) if args.json else explain.render(report))
    return 0


def cmd_rbac(args: argparse.Namespace) -> int:
    import yaml

    from monitor import scope, wiring
    from monitor.actions import rbac

    settings = _load(args)
    registry = wiring.build_registry(settings)
    policies = wiring.load_policies(settings, registry, resolve=False)
    uses: list[rbac.Use] = []
    for p in policies:  # each policy's actions, for the workload kind its target names
        names = p.action_names()
        if p.spec.target.get("resolve") == "owner":
            names.add(rbac.RESOLVE_OWNER)
        uses.append((names, p.spec.target))
    uses.extend(({job.action}, job.target) for job in settings.jobs)
    for kind in args.kind or ():  # as the chart's rbac.workloadKinds: for every action
        uses.extend((names, {"kind": kind}) for names, _target in list(uses))
    namespaces = (
        None if args.cluster else (args.namespace or settings.automation.namespaces_allow or None)
    )
    if namespaces is None and not args.cluster:
        print(
            "conea-monitor: error: name the namespaces (--namespace, or "
            "automation.namespaces_allow) or ask for --cluster",
            file=sys.stderr,
        )
        return 2
    patterns = [n for n in namespaces or () if scope.is_pattern(n)]
    if patterns:
        source = "--namespace" if args.namespace else "automation.namespaces_allow"
        print(
            f"conea-monitor: error: {source}: {patterns[0]!r} is a pattern and a Role needs "
            "a namespace name: list the namespaces with --namespace, or ask for --cluster "
            "(one ClusterRole; the service still keeps to the patterns)",
            file=sys.stderr,
        )
        return 2
    docs = rbac.render_needed(registry, uses, namespaces, args.name)
    print(yaml.safe_dump_all(docs, sort_keys=False), end="")
    return 0


def _when(value: str, base: datetime, flag: str) -> datetime:
    """``value`` as a time: ISO 8601 (UTC unless it says), or a duration before ``base``."""
    from datetime import UTC

    from monitor import durations
    from monitor.replay import ReplayError

    text = value.removesuffix("-ago")
    try:
        return base - durations.parse(text)
    except OverflowError:
        raise ReplayError(f"{flag} {value!r}: before the first representable time") from None
    except ValueError:
        pass
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise ReplayError(
            f"{flag} {value!r}: neither a duration (7d, 2h30m) nor a time (2026-03-02T08:00Z)"
        ) from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def cmd_replay(args: argparse.Namespace) -> int:
    import json
    from datetime import UTC
    from pathlib import Path

    from monitor import durations, policy, replay, wiring
    from monitor import scope as scope_mod

    now = datetime.now(UTC)
    until = _when(args.until, now, "--until") if args.until else now
    try:
        step = durations.parse(args.step)
    except ValueError as exc:
        raise replay.ReplayError(f"--step: {exc}") from None
    if args.alert is None and args.since is None:
        raise replay.ReplayError("--since is required (or replay one payload with --alert FILE)")
    since = _when(args.since, until, "--since") if args.since else None
    if args.alert is None:
        assert since is not None
        replay.check_window(since, until, step)
    settings = _load(args)
    if args.alert is not None:
        try:
            body = Path(args.alert).read_bytes()
        except OSError as exc:
            raise replay.ReplayError(f"cannot read {args.alert!r}: {exc.strerror}") from None
        episodes = replay.from_payload(body, args.alert)
        if since is None:
            since = min((e.starts_at for e in episodes), default=until)
        if since > until:
            raise replay.ReplayError(
                f"--until {until.isoformat()} is before the payload's first startsAt "
                f"{since.isoformat()}"
            )
        source = f"alert file {args.alert}"
    else:
        assert since is not None
        url = args.prometheus or settings.prometheus_url
        if not url:
            raise replay.ReplayError("no Prometheus: give --prometheus URL or set prometheus_url")
        episodes = replay.from_prometheus(url, since, until, step)
        source = f"Prometheus {url}"
    registry = wiring.build_registry(settings)
    paths = [args.policies] if args.policies else [settings.resolve(p) for p in settings.policies]
    policies = policy.load(paths, registry, strict_actions=True)
    automation = settings.automation
    scope = scope_mod.Scope.of(automation.namespaces_allow, automation.namespaces_deny)
    outcome = replay.simulate(policies, episodes, since=since, until=until, scope=scope)
    report = replay.build(outcome, step=None if args.alert else step, source=source)
    if args.record:
        _record_replay(settings, report, now)
    print(json.dumps(report, indent=2) if args.json else replay.render(report))
    return 0


def _record_replay(settings: settings_mod.Settings, report: dict[str, Any], now: datetime) -> None:
    """The one write replay makes, and only with --record: an audit record of kind replay."""
    import asyncio

    from monitor.store import database
    from monitor.store.facade import Store
    from monitor.store.records import Audit

    executions = sum(e["executions"] for e in report["policies"])
    window = report["window"]
    audit = Audit(
        at=now,
        kind="replay",
        message=f"replay {window['since']} .. {window['until']}: {report['episodes']} "
        f"episodes, {executions} executions",
        outcome="replayed",
        details=report,
    )
    db = database.connect(settings.database_url)
    try:
        database.migrate(db)
        asyncio.run(Store(db).record(audit))
    finally:
        db.dispose()


def cmd_pause(args: argparse.Namespace) -> int:
    from monitor import operating

    return operating.pause(args, True)


def cmd_resume(args: argparse.Namespace) -> int:
    from monitor import operating

    return operating.pause(args, False)


def cmd_status(args: argparse.Namespace) -> int:
    from monitor import operating

    return operating.status(args)


def cmd_approve(args: argparse.Namespace) -> int:
    from monitor import operating

    return operating.answer(args, True)


def cmd_reject(args: argparse.Namespace) -> int:
    from monitor import operating

    return operating.answer(args, False)


def cmd_reload(args: argparse.Namespace) -> int:
    from monitor import operating

    return operating.reload(args)


def cmd_report(args: argparse.Namespace) -> int:
    """The incident record of an execution, from the running service's API."""
    from monitor import client

    service = client.ServiceClient.from_args(args.url, args.token_file)
    path = f"/api/v1/executions/{args.id}/report"
    text = service.get_text(path, {"format": args.format})
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="conea-monitor", description=__doc__)
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__import__('monitor').__version__}"
    )
    service_options(parser, None)
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Command, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("--config", "-c", help="settings YAML file (env CONEA_MONITOR_* overrides)")
        p.set_defaults(func=func)
        return p

    p = add("serve", cmd_serve, "run the service")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=settings_mod.DEFAULT_PORT)

    def operate(name: str, func: Command, help_: str) -> argparse.ArgumentParser:
        p = add(name, func, help_)
        p.description = (
            f"{help_}. It asks the running service (--url); --store URL or --config FILE "
            "open that store directly instead."
        )
        service_options(p, argparse.SUPPRESS)  # after the command too, as before it
        p.add_argument(
            "--store", metavar="URL", help="open this store (a database URL) directly instead"
        )
        p.add_argument("--json", action="store_true", help="print the answer as JSON")
        return p

    p = operate("history", cmd_history, "print recorded alerts or executions")
    p.add_argument("what", nargs="?", choices=["alerts", "executions"], default="alerts")
    p.add_argument(
        "--status",
        "--state",
        help="alerts: firing or resolved; executions: a state (docs/states.md)",
    )
    p.add_argument("--alertname")
    p.add_argument("--fingerprint")
    p.add_argument("--policy", help="executions of this policy")
    p.add_argument("--since", help="a duration back from now (1h, 2d) or an ISO 8601 time")
    p.add_argument("--until", help="a duration back from now or an ISO 8601 time")
    p.add_argument("--limit", type=operating_limit, default=50, help="at most 1000 (default 50)")

    operate("status", cmd_status, "print whether automation is paused, the mode and the breaker")
    operate("reload", cmd_reload, "make the running service read its policies again")

    p = add("check", cmd_check, "check remediation policy files (and the settings)")
    p.add_argument("paths", nargs="*", help="files or directories (default: the configured)")
    p.add_argument(
        "--cluster",
        action="store_true",
        help="also ask the cluster whether it grants what the policies' actions need",
    )
    p.add_argument(
        "--rules",
        action="append",
        metavar="PATH",
        help="Prometheus rule files or directories (or PrometheusRule manifests): check the "
        "labels templates name against the alerts' rules (repeatable)",
    )
    p.add_argument(
        "--prometheus", metavar="URL", help="read the alerts' rules from Prometheus' /api/v1/rules"
    )
    p.add_argument("--strict", action="store_true", help="warnings are errors (exit 1)")

    add("schema", cmd_schema, "print the JSON Schema of the policy file format")

    p = add("explain", cmd_explain, "what the engine would do with a notification")
    p.add_argument("--alert", required=True, help="an Alertmanager webhook payload (JSON)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    p = add("rbac", cmd_rbac, "print the RBAC the configured actions need")
    p.add_argument("--namespace", action="append", help="a namespace to grant (repeatable)")
    p.add_argument("--cluster", action="store_true", help="one ClusterRole instead")
    p.add_argument("--name", default="conea-monitor", help="name of the Role/ClusterRole")
    p.add_argument(
        "--kind",
        action="append",
        choices=["Deployment", "StatefulSet", "DaemonSet"],
        help="also grant every action this workload kind, as the chart's "
        "rbac.workloadKinds does (repeatable)",
    )

    p = add("replay", cmd_replay, "what the policies would have done with past alerts")
    p.add_argument("--since", help="window start: a duration before --until (7d) or a time")
    p.add_argument("--until", help="window end: a time or a duration ago (default: now)")
    p.add_argument("--policies", help="policy file or directory (default: the configured)")
    p.add_argument("--prometheus", help="Prometheus URL (default: prometheus_url)")
    p.add_argument("--step", default="1m", help="resolution of the history (default 1m)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--alert", help="one captured Alertmanager webhook payload (JSON)")
    p.add_argument("--record", action="store_true", help="write the report as one audit record")

    for name, func, help_ in (
        ("pause", cmd_pause, "pause all automation (kill switch)"),
        (
            "resume",
            cmd_resume,
            "resume automation (the alerts skipped during the pause that still fire are "
            "decided again; the blast-radius breaker is closed)",
        ),
    ):
        p = operate(name, func, help_)
        p.add_argument("--reason", default="", help="recorded in the audit trail")
        if name == "resume":
            p.add_argument(
                "--no-catch-up",
                action="store_true",
                help="leave the alerts skipped during the pause alone (by default those "
                "still firing are decided again)",
            )
    for name, func, help_ in (
        ("approve", cmd_approve, "approve a step awaiting approval (it is decided again)"),
        ("reject", cmd_reject, "reject a step awaiting approval (nothing acts)"),
    ):
        p = operate(name, func, help_)
        p.add_argument("id", type=_execution_id, help="the execution's id")
        p.add_argument("--reason", default="", help="recorded in the audit trail")
        p.add_argument("--by", default="", help="who answers (default: cli (<user>))")

    p = sub.add_parser(
        "report",
        help="print an execution's incident record (from the running service)",
        description="The incident record of the ladder an execution is a step of: the alert, "
        "the evidence, every step with its plans and results, verification, escalation, "
        "revert, who approved or paused; a postmortem draft (markdown) or JSON.",
    )
    p.set_defaults(func=cmd_report)
    p.add_argument("id", type=_execution_id, help="the execution's id")
    p.add_argument("--format", choices=["markdown", "json"], default="markdown")
    p.add_argument("--json", dest="format", action="store_const", const="json", help="JSON")
    service_options(p, argparse.SUPPRESS)
    return parser


def service_options(parser: argparse.ArgumentParser, default: Any) -> None:
    """``--url`` and ``--token-file``, on the command line and on each command that talks
    to the service (``default``: SUPPRESS there, so it does not hide the former)."""
    parser.add_argument(
        "--url",
        default=default,
        help="the running service (default: $CONEA_MONITOR_URL, else http://127.0.0.1:"
        f"{settings_mod.DEFAULT_PORT})",
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        default=default,
        metavar="PATH",
        help="the token to send (default: $CONEA_MONITOR_TOKEN, else the file "
        "$CONEA_MONITOR_TOKEN_FILE names)",
    )


def operating_limit(text: str) -> int:
    from monitor import operating

    return operating.limit(text)


def _execution_id(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 2**63:
        raise argparse.ArgumentTypeError(f"not an execution id: {text!r}")
    return int(text)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ServiceError as exc:  # the service was not reached, or refused
        print(f"conea-monitor: error: {exc}", file=sys.stderr)
        return 1
    except MonitorError as exc:
        print(f"conea-monitor: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
