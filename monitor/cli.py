"""The ``conea-monitor`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from monitor import settings as settings_mod
from monitor.errors import MonitorError

Command = Callable[[argparse.Namespace], int]


def _load(args: argparse.Namespace) -> settings_mod.Settings:
    return settings_mod.load(args.config)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from monitor import logs
    from monitor.app import create_app

    settings = _load(args)
    logs.configure(settings.log.level, settings.log.format)
    app = create_app(settings)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    return 0


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, datetime):
            return value.strftime("%Y-%m-%d %H:%M:%S")
        if value is None:
            return "-"
        return str(value)

    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def cmd_history(args: argparse.Namespace) -> int:
    from monitor.store import database, queries

    settings = _load(args)
    db = database.connect(settings.database_url)
    try:
        database.migrate(db)
        f = queries.Filters(
            status=args.status,
            alertname=args.alertname,
            fingerprint=args.fingerprint,
            policy=args.policy,
            since=args.since,
            until=args.until,
            limit=args.limit,
        )
        if args.what == "alerts":
            page = queries.list_alerts(db, f)
            columns = [
                "id",
                "last_received_at",
                "status",
                "alertname",
                "fingerprint",
                "starts_at",
                "deliveries",
            ]
        else:
            page = queries.list_executions(db, f)
            columns = [
                "id",
                "created_at",
                "policy",
                "step",
                "alertname",
                "target_key",
                "state",
                "dry_run",
                "verify_state",
                "revert_state",
            ]
    finally:
        db.dispose()
    print(_table(page.items, columns) if page.items else f"no {args.what} recorded")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="conea-monitor", description=__doc__)
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__import__('monitor').__version__}"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Command, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("--config", "-c", help="settings YAML file (env CONEA_MONITOR_* overrides)")
        p.set_defaults(func=func)
        return p

    p = add("serve", cmd_serve, "run the service")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9115)

    p = add("history", cmd_history, "print recorded alerts or executions")
    p.add_argument("what", nargs="?", choices=["alerts", "executions"], default="alerts")
    p.add_argument("--status")
    p.add_argument("--alertname")
    p.add_argument("--fingerprint")
    p.add_argument("--policy")
    p.add_argument("--since", type=datetime.fromisoformat)
    p.add_argument("--until", type=datetime.fromisoformat)
    p.add_argument("--limit", type=int, default=50)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except MonitorError as exc:
        print(f"conea-monitor: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
