"""Whether what the settings name answers, said once at start-up.

A misspelt host or a closed port should be a line in the start-up log, not the reason a
remediation fails at 3 a.m. :func:`check` tries, at once and each within ``within``
seconds: Prometheus (``prometheus_url``, ``/-/ready``), Alertmanager
(``alertmanager_url``, ``/-/ready``) and every PostgreSQL target (a connection with its
configured user, then closed). Nothing is retried or changed; a failure is a warning and
an entry under ``unreachable`` on ``/readyz``, never a reason not to start: the service
still serves everything else, and a target may come up later. Messages carry no secret:
URLs lose their passwords and PostgreSQL errors go through the target's redactor.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx
import psycopg

from monitor import secrets, summary
from monitor.errors import ConfigError
from monitor.settings import Settings
from monitor.targets import PostgresTarget

TIMEOUT = 5.0


@dataclass(frozen=True)
class Reach:
    """One thing tried: ``what`` (safe to log) and why it did not answer (None: it did)."""

    what: str
    problem: str | None = None

    def __str__(self) -> str:
        return f"{self.what}: {'answers' if self.problem is None else self.problem}"


async def _http(what: str, base: str, within: float) -> Reach:
    name = f"{what} {summary.safe_url(base)}"
    try:
        async with httpx.AsyncClient(timeout=within) as client:
            response = await client.get(base.rstrip("/") + "/-/ready")
    except httpx.HTTPError as exc:
        reason = str(exc) or type(exc).__name__
        return Reach(name, f"does not answer: {summary.safe_url(reason)}")
    if response.status_code != 200:
        return Reach(name, f"not ready: GET /-/ready answered {response.status_code}")
    return Reach(name)


async def _postgres(label: str, target: PostgresTarget, within: float) -> Reach:
    name = f"PostgreSQL target {label!r} ({target.describe()})"
    redactor = secrets.Redactor()
    try:
        kwargs = target.connect_kwargs(None, redactor)
    except ConfigError as exc:
        return Reach(name, f"not tried: {exc}")
    kwargs["connect_timeout"] = max(1, min(target.connect_timeout, int(within)))
    try:
        async with asyncio.timeout(within):
            conn = await psycopg.AsyncConnection.connect(**kwargs, autocommit=True)
            await conn.close()
    except TimeoutError:
        return Reach(name, f"does not answer within {within:g}s")
    except psycopg.Error as exc:
        return Reach(name, f"cannot connect: {' '.join(redactor.text(str(exc)).split())}")
    return Reach(name)


async def check(settings: Settings, *, within: float = TIMEOUT) -> list[Reach]:
    """Everything tried at once; one :class:`Reach` each, in a stable order."""
    tries = []
    if settings.prometheus_url:
        tries.append(_http("Prometheus", settings.prometheus_url, within))
    if settings.alertmanager_url:
        tries.append(_http("Alertmanager", settings.alertmanager_url, within))
    for label, target in sorted(settings.postgres_targets.items()):
        tries.append(_postgres(label, target, within))
    return list(await asyncio.gather(*tries))
