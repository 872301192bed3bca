"""The start-up summary: what is on and off, and why, in a few log lines.

``lines(settings, kube=..., rehearsal=...)`` says the mode and why, verification, the
still-firing check, each notifier and PostgreSQL target with whether its secret can be
read, the breaker, approval, the namespaces in scope and the store. Secrets are checked
for presence only (an environment variable set, a file readable): no value is read into
a line, and URLs lose their passwords.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from monitor import durations, secrets, targets
from monitor.settings import Settings

PREFIX = "start-up: "

_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:@/]*)(?::[^@/]*)?@", re.I)


def lines(settings: Settings, *, kube: bool, rehearsal: bool) -> list[str]:
    """One line per thing that is on or off, each starting with :data:`PREFIX`."""
    out = [
        f"mode: {_mode(settings, kube, rehearsal)}",
        f"verification: {_verification(settings)}",
        f"still-firing check: {_firing(settings)}",
    ]
    if not settings.notifiers:
        out.append("notifiers: none configured (notify steps cannot run)")
    for name, notifier in sorted(settings.notifiers.items()):
        out.append(f"notifier {name!r}: {_notifier(notifier)}")
    for name, target in sorted(settings.postgres_targets.items()):
        out.append(f"PostgreSQL target {name!r}: {_postgres(target)}")
    if not settings.postgres_targets:
        out.append("PostgreSQL targets: none configured (postgres.* actions cannot run)")
    out += [
        f"breaker: {_breaker(settings)}",
        f"approval: {_approval(settings)}",
        f"namespaces: {_namespaces(settings)}",
        f"store: {safe_url(settings.database_url)}",
    ]
    if settings.automation.paused:
        out.append("automation: paused (automation.paused: true): nothing acts until it is unset")
    return [PREFIX + line for line in out]


def safe_url(url: str) -> str:
    """``url`` without the password of its user info (``postgresql://u@h/db``)."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}@", url)


def _mode(settings: Settings, kube: bool, rehearsal: bool) -> str:
    automation = settings.automation
    no_kube = (
        "kubernetes.mode: none"
        if settings.kubernetes.mode == "none"
        else "no kubeconfig or service account found"
    )
    if automation.mode is None and automation.dry_run is None:
        if rehearsal:
            return f"rehearsal (no Kubernetes credentials: {no_kube}; automation.mode: live to act)"
        return "live (Kubernetes credentials found and automation.mode is not set)"
    if automation.mode is not None:
        text = f"{automation.mode} (automation.mode: {automation.mode})"
    else:
        said = str(automation.dry_run).lower()
        text = f"{'rehearsal' if rehearsal else 'live'} (automation.dry_run: {said})"
    if not kube:
        text += f"; Kubernetes actions cannot run ({no_kube})"
    return text


def _verification(settings: Settings) -> str:
    if settings.prometheus_url:
        return f"on (verify.promql is asked of {safe_url(settings.prometheus_url)})"
    return (
        "off (prometheus_url is not set: verify.promql cannot run, recovery is judged by "
        "the alert's own state)"
    )


def _firing(settings: Settings) -> str:
    if settings.alertmanager_url:
        return f"Alertmanager at {safe_url(settings.alertmanager_url)}"
    if settings.prometheus_url:
        return (
            f"Prometheus's ALERTS at {safe_url(settings.prometheus_url)} "
            "(alertmanager_url is not set)"
        )
    return (
        "off (neither alertmanager_url nor prometheus_url is set: only the webhooks "
        "received tell whether an alert still fires)"
    )


def _notifier(notifier: targets.Notifier) -> str:
    parts: list[str] = [notifier.kind]
    if notifier.kind == "email":
        tls = (
            "implicit TLS"
            if notifier.tls_on_connect
            else "STARTTLS"
            if notifier.encrypted
            else "no TLS"
        )
        parts.append(f"{notifier.describe_url()} ({tls}), {len(notifier.to)} recipient(s)")
    elif isinstance(notifier.endpoint, secrets.SecretRef):
        parts.append(f"url {notifier.endpoint.describe()} ({_ref_state(notifier.endpoint)})")
    else:  # the path of a webhook URL is a secret
        parts.append(f"url {_origin(notifier.endpoint)}…")
    for what, ref in (("routing key", notifier.routing_key), ("password", notifier.password)):
        if ref is not None:
            parts.append(f"{what} {ref.describe()} ({_ref_state(ref)})")
    for header, value in sorted(notifier.headers.items()):
        if isinstance(value, secrets.SecretValue):
            parts.append(f"header {header} {value.secret.describe()} ({_ref_state(value.secret)})")
    return ", ".join(parts)


def _origin(url: str) -> str:
    match = re.match(r"[a-z][a-z0-9+.-]*://[^/?#]*", url, re.I)
    return safe_url(match.group(0) if match else url) + "/"


def _postgres(target: targets.PostgresTarget) -> str:
    ref = target.password
    if ref is None:
        return f"{target.describe()}, no password configured"
    # "(state)", not ": state": the log's mask would take a file named *password: x for one
    return f"{target.describe()}, password {ref.describe()} ({_ref_state(ref)})"


def _ref_state(ref: secrets.SecretRef) -> str:
    """``resolvable``, or why not; never the value."""
    if ref.env is not None:
        if ref.env not in os.environ:
            return f"env {ref.env} not set"
        if not os.environ[ref.env].strip():
            return f"env {ref.env} is empty"
        return "resolvable"
    path = Path(str(ref.file))
    if not path.is_file():
        return f"file {path} does not exist"
    if not os.access(path, os.R_OK):
        return f"file {path} is not readable"
    return "resolvable"


def _breaker(settings: Settings) -> str:
    limit = settings.automation.max_actions
    if limit is None:
        return "off (automation.max_actions is not set)"
    told = f", tells {limit.notifier!r}" if limit.notifier else ""
    return (
        f"on: at most {limit.count} live actions in {durations.format(limit.window)} "
        f"(reset {limit.reset}{told})"
    )


def _approval(settings: Settings) -> str:
    approval = settings.automation.approval
    asked = (
        f"requests go to notifier {approval.notifier!r}"
        if approval.notifier
        else "no automation.approval.notifier: requests wait in the API and `conea-monitor approve`"
    )
    scope = (
        "every step that changes something"
        if settings.automation.mode == "approval"
        else "only steps and policies with approval: required"
    )
    timeout = durations.format(approval.timeout)
    return f"{scope}; {asked}; unanswered for {timeout}, the next step runs"


def _namespaces(settings: Settings) -> str:
    automation = settings.automation
    allow = ", ".join(automation.namespaces_allow) or "any"
    deny = ", ".join(automation.namespaces_deny)
    return f"{allow} except {deny}" if deny else allow
