"""Kubernetes diagnostics: the target's pods, their events, their logs.

The target is the policy's (``kind``/``namespace``/``name``, ``resolve: owner``
followed as the actions follow it); a Deployment's or StatefulSet's pods are those its
``spec.selector.matchLabels`` select, a Pod target is that pod alone. Each reads only:
``pods`` list/get, ``events`` list, ``pods/log`` get.
"""

from __future__ import annotations

import asyncio
import functools
from datetime import datetime
from typing import Any

import re2
from pydantic import Field, field_validator

from monitor import errors
from monitor.actions import registry
from monitor.actions.diagnose import common
from monitor.actions.kubernetes import common as kcommon
from monitor.k8s import client as k8s_client
from monitor.k8s import workloads

KINDS = ("Deployment", "StatefulSet", "Pod")
MAX_PODS = 50  # pods read by kubernetes.pods (and whose events are read)
EVENT_PODS = 10  # pods whose events kubernetes.events reads, besides the target
LOG_BYTES = 512 * 1024  # limitBytes of one log request
FILTER_TAIL = 2000  # lines read per pod when a filter picks among them
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


async def _pods(ctx: registry.ActionContext) -> tuple[str, list[dict[str, Any]]]:
    """The target (``kind namespace/name``) and its pods, not-ready ones first."""
    kube = kcommon.kube(ctx)
    t = await kcommon.workload(ctx, kube, KINDS)
    if t.kind == "Pod":
        pods = [await kube.read("Pod", t.namespace, t.name)]
    else:
        obj = await kube.read(t.kind, t.namespace, t.name)
        labels = workloads.match_labels(obj)
        if not labels:
            raise errors.PermanentActionError(f"{t} selects no pods (no spec.selector.matchLabels)")
        pods = await kube.list("Pod", t.namespace, workloads.selector(labels))
    pods.sort(key=lambda p: (_ready(p)[0] == _ready(p)[1], p["metadata"]["name"]))
    return str(t), pods


def _statuses(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return list((pod.get("status") or {}).get("containerStatuses") or [])


def _ready(pod: dict[str, Any]) -> tuple[int, int]:
    containers = (pod.get("spec") or {}).get("containers") or []
    ready = sum(1 for s in _statuses(pod) if s.get("ready"))
    return ready, max(len(containers), len(_statuses(pod)))


def _phase(pod: dict[str, Any]) -> str:
    """The phase, or what a container waits on (CrashLoopBackOff, ImagePullBackOff...)."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    for status in _statuses(pod):
        reason = ((status.get("state") or {}).get("waiting") or {}).get("reason")
        if reason:
            return str(reason)
    return str((pod.get("status") or {}).get("phase") or "Unknown")


def _last_termination(pod: dict[str, Any]) -> str:
    for status in _statuses(pod):
        terminated = (status.get("lastState") or {}).get("terminated")
        if terminated:
            code = terminated.get("exitCode")
            reason = terminated.get("reason") or "Terminated"
            return f"{reason} (exit {code})" if code is not None else str(reason)
    return ""


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _age(now: datetime, since: Any) -> str:
    at = _time(since)
    if at is None:
        return ""
    seconds = max(int((now - at).total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class PodsParams(registry.StrictModel):
    limit: int = Field(MAX_PODS, ge=1, le=MAX_PODS, description="at most this many pods")


class Pods(common.Diagnostic[PodsParams]):
    """``kubectl get pods -l <selector>``: phase, readiness, restarts, last
    termination reason, node and age of the target's pods."""

    name = "kubernetes.pods"
    Params = PodsParams
    rbac = (
        registry.RbacRule(("apps",), ("deployments", "statefulsets"), ("get",)),
        registry.RbacRule(("",), ("pods",), ("get", "list")),
    )
    COLUMNS = ["name", "phase", "ready", "restarts", "last termination", "node", "age"]

    async def gather(self, params: PodsParams, ctx: registry.ActionContext) -> common.Found:
        target, pods = await _pods(ctx)
        now = ctx.now()
        rows = []
        not_ready: list[str] = []
        for pod in pods:
            ready, total = _ready(pod)
            restarts = sum(int(s.get("restartCount") or 0) for s in _statuses(pod))
            phase = _phase(pod)
            if ready < total:
                not_ready.append(f"{phase}, {restarts} restarts")
            rows.append(
                [
                    pod["metadata"]["name"],
                    phase,
                    f"{ready}/{total}",
                    restarts,
                    _last_termination(pod),
                    (pod.get("spec") or {}).get("nodeName") or "",
                    _age(now, pod["metadata"].get("creationTimestamp")),
                ]
            )
        summary = f"{len(pods)} pods of {target}"
        if not_ready:
            summary += f", {len(not_ready)} not ready ({'; '.join(not_ready[:3])})"
        elif pods:
            summary += ", all ready"
        return common.table(
            self.COLUMNS, rows[: params.limit], summary, truncated=len(rows) > params.limit
        )


class EventsParams(registry.StrictModel):
    limit: int = Field(20, ge=1, le=200, description="the newest this many events")


def _seen(event: dict[str, Any]) -> str:
    return str(
        event.get("lastTimestamp")
        or (event.get("series") or {}).get("lastObservedTime")
        or event.get("eventTime")
        or (event.get("metadata") or {}).get("creationTimestamp")
        or ""
    )


class Events(common.Diagnostic[EventsParams]):
    """``kubectl get events --sort-by=.lastTimestamp``, for the target and its pods,
    newest first."""

    name = "kubernetes.events"
    Params = EventsParams
    rbac = (
        registry.RbacRule(("apps",), ("deployments", "statefulsets"), ("get",)),
        registry.RbacRule(("",), ("pods",), ("get", "list")),
        registry.RbacRule(("",), ("events",), ("list",)),
    )
    COLUMNS = ["last seen", "type", "reason", "object", "count", "message"]

    async def gather(self, params: EventsParams, ctx: registry.ActionContext) -> common.Found:
        kube = kcommon.kube(ctx)
        t = await kcommon.workload(ctx, kube, KINDS)
        objects = [(t.kind, t.name)]
        if t.kind != "Pod":
            _target, pods = await _pods(ctx)
            objects += [("Pod", p["metadata"]["name"]) for p in pods[:EVENT_PODS]]
        found = await asyncio.gather(*(_events(kube, t.namespace, k, n) for k, n in objects))
        events = sorted((e for batch in found for e in batch), key=_seen, reverse=True)
        now = ctx.now()
        rows = [
            [
                _age(now, _seen(e)),
                e.get("type") or "",
                e.get("reason") or "",
                f"{(e.get('involvedObject') or {}).get('kind', '').lower()}/"
                f"{(e.get('involvedObject') or {}).get('name', '')}",
                int(e.get("count") or (e.get("series") or {}).get("count") or 1),
                " ".join(str(e.get("message") or "").split()),
            ]
            for e in events[: params.limit]
        ]
        warnings = [e for e in events if e.get("type") == "Warning"]
        summary = f"{len(events)} events for {t} and its pods"
        if warnings:
            top = warnings[0]
            summary += (
                f", {len(warnings)} warnings (newest: {top.get('reason')} x"
                f"{int(top.get('count') or 1)}: {' '.join(str(top.get('message') or '').split())})"
            )
        return common.table(self.COLUMNS, rows, summary, truncated=len(events) > params.limit)


async def _events(
    kube: k8s_client.Kube, namespace: str, kind: str, name: str
) -> list[dict[str, Any]]:
    selector = f"involvedObject.kind={kind},involvedObject.name={name}"
    return await kube.list("Event", namespace, field_selector=selector)


@functools.lru_cache(maxsize=256)
def _compile(pattern: str) -> Any:
    return re2.compile(pattern, _RE2_OPTIONS)


class LogsParams(registry.StrictModel):
    tail: int = Field(100, ge=1, le=2000, description="the last this many lines per pod")
    pods: int = Field(2, ge=1, le=5, description="of at most this many pods (not ready first)")
    container: str | None = Field(
        None, min_length=1, max_length=253, description="default: the pod's first container"
    )
    previous: bool = Field(False, description="the previous (crashed) container's log")
    filter: str | None = Field(
        None, min_length=1, max_length=1000, description="keep lines matching this RE2 regex"
    )

    @field_validator("filter")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            _compile(value)
        except re2.error as exc:
            reason = exc.args[0].decode() if isinstance(exc.args[0], bytes) else exc
            raise ValueError(f"invalid regular expression {value!r}: {reason}") from None
        return value


class Logs(common.Diagnostic[LogsParams]):
    """``kubectl logs --tail=N [--previous] [-c container] | grep PATTERN`` for the
    target's pods, each line prefixed with its pod."""

    name = "kubernetes.logs"
    Params = LogsParams
    rbac = (
        registry.RbacRule(("apps",), ("deployments", "statefulsets"), ("get",)),
        registry.RbacRule(("",), ("pods",), ("get", "list")),
        registry.RbacRule(("",), ("pods/log",), ("get",)),
    )

    async def gather(self, params: LogsParams, ctx: registry.ActionContext) -> common.Found:
        kube = kcommon.kube(ctx)
        target, pods = await _pods(ctx)
        chosen = pods[: params.pods]
        if not chosen:
            return common.lines([], f"no pods of {target}")
        read = await asyncio.gather(
            *(self._one(kube, params, pod) for pod in chosen), return_exceptions=True
        )
        out: list[str] = []
        problems: list[str] = []
        matched = 0
        truncated = len(pods) > params.pods
        for pod, got in zip(chosen, read, strict=True):
            name = pod["metadata"]["name"]
            if isinstance(got, BaseException):
                if not isinstance(got, errors.ActionError):
                    raise got
                problems.append(f"{name}: {got}")
                out.append(f"[{name}] (no log: {got})")
                continue
            picked, cut = got
            truncated = truncated or cut
            matched += len(picked)
            out.extend(f"[{name}] {line}" for line in picked)
        if len(problems) == len(chosen):
            raise errors.PermanentActionError(f"no log could be read: {problems[0]}")
        which = "previous " if params.previous else ""
        summary = f"{matched} {which}log lines from {len(chosen) - len(problems)} pods of {target}"
        if params.filter:
            summary += f" matching {params.filter!r}"
        return common.lines(out, summary, truncated)

    async def _one(
        self, kube: k8s_client.Kube, params: LogsParams, pod: dict[str, Any]
    ) -> tuple[list[str], bool]:
        containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
        annotations = (pod.get("metadata") or {}).get("annotations") or {}
        container = (
            params.container
            or annotations.get("kubectl.kubernetes.io/default-container")
            or (containers[0] if containers else None)
        )
        text = await kube.pod_log(
            pod["metadata"]["namespace"],
            pod["metadata"]["name"],
            container=container,
            tail_lines=FILTER_TAIL if params.filter else params.tail,
            previous=params.previous,
            limit_bytes=LOG_BYTES,
        )
        found = text.splitlines()
        cut = len(text.encode()) >= LOG_BYTES
        if params.filter:
            pattern = _compile(params.filter)
            found = [line for line in found if pattern.search(line)]
            if len(found) > params.tail:
                found, cut = found[-params.tail :], True
        return found, cut


DIAGNOSTICS: tuple[type[registry.Action[Any]], ...] = (Pods, Events, Logs)
