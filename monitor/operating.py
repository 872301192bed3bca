"""The commands that operate the running service: pause, resume, status, history,
approve, reject and reload.

By default they talk to the service over its HTTP API (:mod:`monitor.client`): a pause
that reaches no service fails, naming the address it tried, and changes nothing anywhere.
Only with an explicit ``--store URL`` or ``--config FILE`` do they open a store directly;
then a store that does not exist is refused (nothing is created), and they warn when the
store is empty or when no running service has used it in the last minute (its heartbeat,
:mod:`monitor.store.presence`). A pause of an empty store that no service ever used is
refused: it would reach nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from monitor import durations
from monitor import settings as settings_mod
from monitor.client import ServiceClient
from monitor.errors import ConfigError, MonitorError

if TYPE_CHECKING:
    from monitor.store import presence

FAILED = 1  # the command reached nothing, or was refused
USAGE = 2
MAX_REASON_CHARS = 1000  # as the API's
MAX_BY_CHARS = 100
MAX_LIMIT = 1000  # the API's largest page

EXECUTION_COLUMNS = [
    "id",
    "created_at",
    "policy",
    "step",
    "alertname",
    "target_key",
    "state",
    "mode",
    "verify_state",
    "revert_state",
]
ALERT_COLUMNS = [
    "id",
    "last_received_at",
    "status",
    "alertname",
    "fingerprint",
    "starts_at",
    "deliveries",
]


def _error(text: str) -> None:
    print(f"conea-monitor: error: {text}", file=sys.stderr)


def _warn(text: str) -> None:
    print(f"conea-monitor: warning: {text}", file=sys.stderr)


def _show(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def _time(value: Any) -> str:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return "-" if value is None else str(value)


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def cell(column: str, value: Any) -> str:
        if column.endswith("_at") or isinstance(value, datetime):
            return _time(value)
        return "-" if value is None else str(value)

    cells = [[cell(c, r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


# Where a command goes ------------------------------------------------------------------


def is_direct(args: argparse.Namespace) -> bool:
    """``--store`` or ``--config`` given: the command opens that store itself."""
    direct = args.store is not None or args.config is not None
    if direct and args.url is not None:
        raise ConfigError(
            "give --url (the running service) or --config/--store (a store directly), not both"
        )
    return direct


def service(args: argparse.Namespace) -> ServiceClient:
    return ServiceClient.from_args(args.url, args.token_file)


@dataclass
class Store:
    """A store opened directly: its engine, its URL as shown, and who uses it."""

    db: Any
    shown: str
    usage: presence.Usage


@contextlib.contextmanager
def opened(args: argparse.Namespace, verb: str) -> Iterator[Store]:
    """The store ``--store`` or ``--config`` names, which must exist; warns on stderr when
    it is empty or no running service has used it in the last minute."""
    from monitor.store import database, presence

    if args.store is not None:
        url, source = args.store, "--store"
    else:
        url, source = settings_mod.load(args.config).database_url, f"--config {args.config}"
    try:
        shown, path = presence.where(url)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    if path is not None and not path.exists():
        raise MonitorError(
            f"no store at {path} ({source}): nothing to {verb}; pass --url for the running "
            "service, or the --config/--store it uses"
        )
    db = database.connect(url)
    try:
        database.ping(db)
        database.migrate(db)
        store = Store(db, shown, presence.usage(db))
        _warn_usage(store, datetime.now(UTC))
        yield store
    finally:
        db.dispose()


def _warn_usage(store: Store, now: datetime) -> None:
    use = store.usage
    if use.empty:
        _warn(
            f"the store {store.shown} is empty (no executions, no switch ever set, never used "
            "by a service): is it the one the service uses? (its store.url or data_dir)"
        )
    elif not use.running(now):
        since = "since " + _time(use.last_seen) + " UTC" if use.last_seen else "(no heartbeat)"
        _warn(f"no running service has used this store {since}; it is {store.shown}")


def _checked(field: str, value: str, limit: int) -> str | None:
    if len(value) > limit or not value.isprintable():
        return f"{field}: at most {limit} printable characters"
    return None


# The commands --------------------------------------------------------------------------


def pause(args: argparse.Namespace, paused: bool) -> int:
    problem = _checked("--reason", args.reason, MAX_REASON_CHARS)
    if problem:
        _error(problem)
        return USAGE
    if is_direct(args):
        return _switch_store(args, paused)
    api = service(args)
    body: dict[str, Any] = {"reason": args.reason} if args.reason else {}
    if not paused and args.no_catch_up:
        body["catch_up"] = False
    answer = api.post("/api/v1/pause" if paused else "/api/v1/resume", body)
    if not isinstance(answer, dict) or answer.get("paused") is not paused:
        _error(
            f"{api.url} answered {answer!r}: automation is not {'paused' if paused else 'resumed'}"
        )
        return FAILED
    if args.json:
        _show(answer)
    elif paused:
        print(f"automation paused ({api.url})")
    else:
        print(f"{answer.get('message') or 'automation resumed'} ({api.url})")
        if answer.get("breaker") == "closed":
            print("breaker closed")
    return 0


def _switch_store(args: argparse.Namespace, paused: bool) -> int:
    from monitor.store import breaker, control

    by = f"cli ({getpass.getuser()})"
    now = datetime.now(UTC)
    with opened(args, "pause" if paused else "resume") as store:
        if paused and store.usage.empty:
            _error(
                f"nothing paused: the store {store.shown} is empty and no service has used it; "
                "pass --url for the running service, or the --config/--store it uses"
            )
            return FAILED
        if paused:
            control.set_paused(store.db, True, by, args.reason, now)
            said = "automation paused"
        else:  # the alerts skipped during the pause are queued again, for the service
            catch_up = not args.no_catch_up
            said = control.resume(store.db, by, args.reason, now, catch_up=catch_up).summary
        # Resume closes the blast-radius breaker too; the service reads it at its next batch.
        closed = not paused and breaker.close_breaker(store.db, now, by)
    if args.json:
        _show({"paused": paused, "message": said, **({"breaker": "closed"} if closed else {})})
        return 0
    print(said)
    if closed:
        print("breaker closed")
    return 0


def answer(args: argparse.Namespace, approve: bool) -> int:
    for field, value, limit in (
        ("--reason", args.reason, MAX_REASON_CHARS),
        ("--by", args.by, MAX_BY_CHARS),
    ):
        problem = _checked(field, value, limit)
        if problem:
            _error(problem)
            return USAGE
    if not is_direct(args):
        api = service(args)
        body = {k: v for k, v in (("reason", args.reason), ("by", args.by)) if v}
        verb = "approve" if approve else "reject"
        result = api.post(f"/api/v1/executions/{args.id}/{verb}", body)
        if args.json:
            _show(result)
        else:
            print(result.get("message", result))
        return 0
    from monitor.store import approvals

    with opened(args, "approve" if approve else "reject") as store:
        by = args.by or f"cli ({getpass.getuser()})"
        done = approvals.answer(
            store.db, args.id, approve=approve, by=by, reason=args.reason, at=datetime.now(UTC)
        )
    if not done.ok:
        _error(done.message)
        return FAILED
    # The service decides an approved step again at its next sweep (verify_sweep_seconds).
    if args.json:
        _show({"execution": args.id, "state": done.state, "message": done.message})
    else:
        print(done.message)
    return 0


def reload(args: argparse.Namespace) -> int:
    if is_direct(args):
        raise ConfigError(
            "reload asks the running service to read its policies again: give --url "
            "(or nothing, for the default address), not --config/--store"
        )
    api = service(args)
    result = api.post("/-/reload")
    if args.json:
        _show(result)
    else:
        print(f"policies reloaded: {result.get('policies')} in force")
    return 0


def status(args: argparse.Namespace) -> int:
    if is_direct(args):
        return _status_store(args)
    api = service(args)
    found = api.get("/api/v1/status")
    if args.json:
        _show(found)
        return 0
    pause = found.get("pause") if isinstance(found.get("pause"), dict) else {}
    lines = [
        f"service: {api.url}",
        "automation: "
        + _paused_text(
            bool(found.get("paused")),
            pause.get("since") or pause.get("at") or found.get("paused_at"),
            pause.get("by") or found.get("paused_by"),
            pause.get("reason") or found.get("pause_reason"),
        )
        + (" (automation.paused in the config)" if pause.get("config") else ""),
        f"mode: {found.get('mode', '-')}",
    ]
    policies = found.get("policies") or []
    lines.append(f"policies: {len(policies)}" + (f" ({', '.join(policies)})" if policies else ""))
    if "timers" in found:
        lines.append(f"timers pending: {found['timers']}")
    breaker = found.get("breaker")
    if isinstance(breaker, dict):
        lines.append("breaker: " + _breaker_text(breaker))
    print("\n".join(lines))
    return 0


def _paused_text(paused: bool, since: Any, by: Any, reason: Any) -> str:
    if not paused:
        return "running"
    text = "PAUSED"
    if since:
        text += f" since {_time(since)} UTC"
    if by:
        text += f" by {by}"
    return text + (f": {reason}" if reason else "")


def _breaker_text(breaker: dict[str, Any]) -> str:
    if breaker.get("open"):
        text = "OPEN"
        if breaker.get("opened_at"):
            text += f" since {_time(breaker['opened_at'])} UTC"
        return text + (f": {breaker['reason']}" if breaker.get("reason") else "")
    if breaker.get("closed_at"):
        return f"closed ({_time(breaker['closed_at'])} UTC by {breaker.get('closed_by') or '-'})"
    return "closed"


def _status_store(args: argparse.Namespace) -> int:
    from monitor.store import breaker, control

    with opened(args, "read") as store:
        switch = control.get_control(store.db, control.PAUSE_KEY)
        state = breaker.breaker_state(store.db)
        use = store.usage
    value = switch["value"] if switch and isinstance(switch["value"], dict) else {}
    paused = bool(value.get("paused"))
    since = value.get("since") or (switch["updated_at"] if switch else None)
    by = switch["updated_by"] if switch else None
    breaker_found: dict[str, Any] = {
        "open": state.open,
        "opened_at": state.opened_at,
        "reason": state.reason or None,
        "closed_at": state.closed_at,
        "closed_by": state.closed_by,
    }
    found = {
        "store": store.shown,
        "paused": paused,
        "pause": {"since": since, "by": by, "reason": value.get("reason") or None}
        if paused
        else None,
        "breaker": breaker_found,
        "service": {**(use.service or {}), "last_seen": use.last_seen},
    }
    if args.json:
        _show(found)
        return 0
    seen = use.service or {}
    lines = [
        f"store: {store.shown}",
        "automation: " + _paused_text(paused, since, by, value.get("reason")),
        "breaker: " + _breaker_text(breaker_found),
        "service: "
        + (
            f"last seen {_time(use.last_seen)} UTC on {seen.get('host', '?')} "
            f"(pid {seen.get('pid', '?')}{', stopped' if use.stopped else ''})"
            if use.last_seen
            else "never seen"
        ),
    ]
    print("\n".join(lines))
    return 0


def history(args: argparse.Namespace) -> int:
    from monitor.store.states import State

    known = [str(s) for s in State]
    if args.what == "executions" and args.status is not None and args.status not in known:
        _error(
            f"--status {args.status!r} is not an execution state; "
            f"one of {', '.join(known)} (docs/states.md)"
        )
        return USAGE
    now = datetime.now(UTC)
    window: dict[str, datetime] = {}
    for flag in ("since", "until"):
        text = getattr(args, flag)
        if text is not None:
            try:
                window[flag] = durations.since(text, now)
            except ValueError as exc:
                _error(f"--{flag}: {exc}")
                return USAGE
    columns = ALERT_COLUMNS if args.what == "alerts" else EXECUTION_COLUMNS
    fields = {
        "status": args.status,
        "alertname": args.alertname,
        "fingerprint": args.fingerprint,
        "policy": args.policy if args.what == "executions" else None,
    }
    if is_direct(args):
        items, more = _history_store(args, fields, window)
    else:
        # The window goes as ISO 8601 times: every version of the API reads those.
        params = {k: v for k, v in fields.items() if v is not None}
        params.update({k: v.isoformat() for k, v in window.items()})
        params["limit"] = str(args.limit)
        found = service(args).get(f"/api/v1/{args.what}", params)
        items, more = found.get("items", []), found.get("next") is not None
    if args.json:
        _show(items)
        return 0
    print(table(items, columns) if items else f"no {args.what} recorded")
    if more:
        _warn(f"more {args.what} than --limit {args.limit}: narrow --since, or raise --limit")
    return 0


def _history_store(
    args: argparse.Namespace, fields: dict[str, str | None], window: dict[str, datetime]
) -> tuple[list[dict[str, Any]], bool]:
    from monitor.store import queries

    with opened(args, "read") as store:
        f = queries.Filters(
            status=fields["status"],
            alertname=fields["alertname"],
            fingerprint=fields["fingerprint"],
            policy=fields["policy"],
            since=window.get("since"),
            until=window.get("until"),
            limit=args.limit,
        )
        lister = queries.list_alerts if args.what == "alerts" else queries.list_executions
        page = lister(store.db, f)
    return page.items, page.next is not None


def limit(text: str) -> int:
    """``--limit``: 1 to the API's largest page."""
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not a number from 1 to {MAX_LIMIT}")
    return int(text)
