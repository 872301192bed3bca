"""Kubernetes API failures mapped to :mod:`monitor.errors`.

========================  =========================================================
API answer                raised as
========================  =========================================================
404                       :class:`NotFoundError` (permanent)
403                       :class:`ForbiddenError` (permanent), naming verb + resource
409                       :class:`ConflictError` (temporary: re-read and try again)
400, 422, other 4xx       :class:`~monitor.errors.PermanentActionError`
429, 5xx                  :class:`~monitor.errors.TemporaryActionError` (Retry-After kept)
timeouts, refused, reset  :class:`~monitor.errors.TemporaryActionError`
========================  =========================================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import urllib3.exceptions
from kubernetes.client import exceptions as kube_exceptions

from monitor import errors


@dataclass(frozen=True)
class Call:
    """What was being attempted, for messages: ``patch deployments.apps production/conea-api``."""

    verb: str
    resource: str  # "deployments.apps", "pods", "deployments.apps/scale"
    namespace: str | None
    name: str | None = None

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.name else f"in namespace {self.namespace}"
        return f"{self.verb} {self.resource} {where}"


class NotFoundError(errors.PermanentActionError):
    """The object (or its namespace) does not exist."""


class ForbiddenError(errors.PermanentActionError):
    """The service account lacks an RBAC permission; the message says which."""


class ConflictError(errors.TemporaryActionError):
    """The object changed since it was read (HTTP 409): read it again, then decide again."""


def _message(exc: kube_exceptions.ApiException) -> str:
    try:
        body = json.loads(exc.body or "")
        return str(body.get("message") or exc.reason or "")
    except (ValueError, AttributeError):
        return str(exc.reason or exc.body or "")


def _retry_after(exc: kube_exceptions.ApiException) -> float | None:
    value = (exc.headers or {}).get("Retry-After") if exc.headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def translate(exc: BaseException, call: Call, delay: float = 1.0) -> errors.ActionError:
    """The :mod:`monitor.errors` exception for a failure of ``call``."""
    if isinstance(exc, kube_exceptions.ApiException):
        status = int(exc.status or 0)
        detail = _message(exc)
        if status == 404:
            return NotFoundError(f"{call}: not found ({detail})")
        if status == 403:
            return ForbiddenError(
                f"{call}: forbidden: the service account may not {call.verb!r} resource "
                f"{call.resource!r} in namespace {call.namespace!r}; grant it with the Role "
                f"from `conea-monitor rbac` ({detail})"
            )
        if status == 409:
            return ConflictError(f"{call}: conflict: {detail}", delay=0.5)
        if status == 429 or status >= 500 or status == 0:
            wait = _retry_after(exc)
            return errors.TemporaryActionError(
                f"{call}: API answered {status} {exc.reason or ''}: {detail}".rstrip(),
                delay=wait if wait is not None else delay,
            )
        return errors.PermanentActionError(f"{call}: API refused it ({status}): {detail}")
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError | TimeoutError):
        return errors.TemporaryActionError(f"{call}: {type(exc).__name__}: {exc}", delay=delay)
    raise exc
