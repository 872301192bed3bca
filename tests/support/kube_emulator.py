"""A Kubernetes API emulator for tests: kmock's ``KubernetesEmulator`` plus what actions need.

kmock stores objects and merges dict patches. This subclass serves object requests
itself, adding what a real kube-apiserver does and the actions rely on:

* ``metadata.uid`` / ``resourceVersion`` / ``generation`` stamped on every write;
* ``PUT`` (replace) answering 409 when the body's resourceVersion is stale, and the
  same precondition for a patch that carries ``metadata.resourceVersion``;
* the ``scale`` subresource as a real ``autoscaling/v1`` ``Scale`` object;
* HorizontalPodAutoscalers (``autoscaling/v2``) and DaemonSets like any object, a write
  leaving an HPA with ``maxReplicas`` below 1 or below its ``minReplicas`` answered 422;
* JSON patch, merge patch, and strategic merge patch (lists of dicts merged by ``name``);
* ``labelSelector`` on LIST (``=``, ``==``, ``!=``, ``in``, ``notin``, ``key``, ``!key``)
  and ``fieldSelector`` (``metadata.name``/``namespace``, and the fields the real API
  indexes on core/v1 Events: ``involvedObject.kind``, ``.name``...; another is a 400);
* the ``log`` subresource of a Pod as text/plain, with ``container``, ``tailLines``,
  ``previous`` and ``limitBytes`` and the real API's 400s (a container must be named when
  the pod has several; no previous instance); seed it with :meth:`set_log`;
* fault injection: :meth:`fail` (403, 500, 429...), :meth:`stall` (a timeout) and
  :meth:`race` (another writer changes the object just before our write lands);
* ``SelfSubjectAccessReview`` answered from the Roles and ClusterRoles given to
  :meth:`grant` (everything is allowed until a test grants something); each review
  asked is kept in ``reviews``.

Objects live in kmock's ``objects`` array, so ``emulator.objects[...]`` still works.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import itertools
import re
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp.web
import attrs
import kmock
from kmock._internal import rendering

RESOURCES = {  # kind -> (group, version, plural)
    "Deployment": ("apps", "v1", "deployments"),
    "StatefulSet": ("apps", "v1", "statefulsets"),
    "ReplicaSet": ("apps", "v1", "replicasets"),
    "Pod": ("", "v1", "pods"),
    "Job": ("batch", "v1", "jobs"),
    "DaemonSet": ("apps", "v1", "daemonsets"),
    "CronJob": ("batch", "v1", "cronjobs"),
    "HorizontalPodAutoscaler": ("autoscaling", "v2", "horizontalpodautoscalers"),
    "Event": ("", "v1", "events"),
}
# Field selectors the real API serves: any kind's metadata.name and metadata.namespace,
# and the fields core/v1 Events are indexed by (a selector on another field is a 400).
_FIELDS = {"metadata.name", "metadata.namespace"}
_EVENT_FIELDS = {
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
}
_SCALABLE = {"deployments", "statefulsets", "replicasets"}


@dataclasses.dataclass
class Fault:
    status: int = 0
    delay: float = 0.0
    method: str | None = None
    plural: str | None = None
    times: int = 1
    message: str = ""
    retry_after: int | None = None  # a Retry-After header on the failure

    def matches(self, request: rendering.Request) -> bool:
        assert request.resource is not None
        return (self.method is None or request.method.value == self.method.upper()) and (
            self.plural is None or request.resource.plural == self.plural
        )


def resource_of(kind: str) -> kmock.resource:
    group, version, plural = RESOURCES[kind]
    return kmock.resource(group=group, version=version, plural=plural)


def _status(
    code: int, reason: str, message: str, headers: dict[str, str] | None = None
) -> aiohttp.web.Response:
    body = {
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
    }
    return aiohttp.web.json_response(body, status=code, headers=headers)


class _Reject(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.response = _status(code, reason, message)


def merge(base: Any, patch: Any, strategic: bool) -> Any:
    """RFC 7386 merge; ``strategic`` also merges lists of dicts by their ``name``."""
    if isinstance(patch, dict) and isinstance(base, dict):
        out = dict(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = merge(base.get(key), value, strategic)
        return out
    if (
        strategic
        and isinstance(patch, list)
        and isinstance(base, list)
        and all(isinstance(item, dict) and "name" in item for item in base + patch)
    ):
        merged = {item["name"]: item for item in base}
        for item in patch:
            merged[item["name"]] = merge(merged.get(item["name"]), item, strategic)
        return list(merged.values())
    return copy.deepcopy(patch)


def json_patch(doc: Any, ops: list[dict[str, Any]]) -> Any:
    doc = copy.deepcopy(doc)
    for op in ops:
        *parents, last = [
            p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]
        ]
        node = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        key: Any = (len(node) if last == "-" else int(last)) if isinstance(node, list) else last
        if op["op"] == "test":
            actual = node.get(key) if isinstance(node, dict) else node[key]
            if actual != op["value"]:
                raise _Reject(422, "Invalid", f"test operation failed at {op['path']}")
        elif op["op"] == "add" and isinstance(node, list):
            node.insert(key, op["value"])
        elif op["op"] in ("add", "replace"):
            node[key] = op["value"]
        elif op["op"] == "remove":
            del node[key]
    return doc


def _validate_hpa(name: str, obj: dict[str, Any]) -> None:
    """The API server's checks on an HPA's replica bounds: 422 like it."""
    spec = obj.get("spec") or {}
    low, high = spec.get("minReplicas", 1), spec.get("maxReplicas")
    problem = None
    if not isinstance(high, int) or high < 1:
        problem = f"spec.maxReplicas: Invalid value: {high!r}: must be greater than or equal to 1"
    elif not isinstance(low, int) or low < 1:
        problem = f"spec.minReplicas: Invalid value: {low!r}: must be greater than or equal to 1"
    elif high < low:
        problem = (
            f"spec.maxReplicas: Invalid value: {high}: must be greater than or equal to "
            "`minReplicas`"
        )
    if problem:
        raise _Reject(
            422,
            "Invalid",
            f'HorizontalPodAutoscaler.autoscaling "{name}" is invalid: {problem}',
        )


def selector_matches(selector: str, labels: dict[str, str]) -> bool:
    for term in re.findall(r"[^,(]+(?:\([^)]*\))?", selector):
        term = term.strip()
        if m := re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)", term):
            values = {v.strip() for v in m[3].split(",")}
            if (labels.get(m[1]) in values) != (m[2] == "in"):
                return False
        elif m := re.fullmatch(r"([\w./-]+)\s*(!=|==|=)\s*([\w.-]*)", term):
            if (labels.get(m[1]) == m[3]) != (m[2] != "!="):
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term and term not in labels:
            return False
    return True


def field_value(obj: dict[str, Any], path: str) -> str:
    node: Any = obj
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return "" if node is None else str(node)


def field_terms(selector: str, allowed: set[str]) -> list[tuple[str, bool, str]]:
    """``fieldSelector`` terms ``a.b=c``, ``a.b==c``, ``a.b!=c``, comma-separated, as
    (field, equal, value); _Reject (400) for a field the API does not index."""
    terms = []
    for term in filter(None, (t.strip() for t in selector.split(","))):
        m = re.fullmatch(r"([\w.]+)\s*(!=|==|=)\s*(.*)", term)
        if m is None:
            raise _Reject(400, "BadRequest", f"invalid field selector: {term!r}")
        if m[1] not in allowed:
            raise _Reject(400, "BadRequest", f'"{m[1]}" is not a known field selector')
        terms.append((m[1], m[2] != "!=", m[3]))
    return terms


def fields_match(terms: list[tuple[str, bool, str]], obj: dict[str, Any]) -> bool:
    return all((field_value(obj, f) == value) == equal for f, equal, value in terms)


@attrs.define(kw_only=True)
class KubeEmulator(kmock.KubernetesEmulator):
    """See the module docstring. Seed objects with :meth:`add`, read them with :meth:`read`."""

    faults: list[Fault] = attrs.field(factory=list, init=False)
    races: list[Callable[[KubeEmulator], None]] = attrs.field(factory=list, init=False)
    _counter: itertools.count[int] = attrs.field(factory=lambda: itertools.count(100), init=False)
    roles: list[dict[str, Any]] | None = attrs.field(default=None, init=False)
    reviews: list[dict[str, Any]] = attrs.field(factory=list, init=False)
    # (namespace, pod, container, previous) -> the log's lines (set_log)
    logs: dict[tuple[str, str, str, bool], list[str]] = attrs.field(factory=dict, init=False)

    # --- for tests --------------------------------------------------------------------
    def add(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("namespace", "default" if obj["kind"] != "Namespace" else None)
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("generation", 1)
        meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        meta["resourceVersion"] = str(next(self._counter))
        self.objects[resource_of(obj["kind"]), meta["namespace"], meta["name"]] = obj
        return obj

    def read(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.objects[resource_of(kind), namespace, name].raw)

    def modify(
        self, kind: str, namespace: str, name: str, change: Callable[[dict[str, Any]], None]
    ) -> None:
        """Another writer's update: ``change`` edits the object; its version moves on."""
        obj = self.read(kind, namespace, name)
        change(obj)
        self._store(resource_of(kind), namespace, name, obj, spec_changed=True)

    def set_log(
        self,
        namespace: str,
        pod: str,
        lines: list[str],
        *,
        container: str | None = None,
        previous: bool = False,
    ) -> None:
        """What the pod's container logged (its only or first container by default);
        ``previous``: the instance before the last restart."""
        if container is None:
            obj = self.read("Pod", namespace, pod)
            container = obj["spec"]["containers"][0]["name"]
        self.logs[namespace, pod, container, previous] = list(lines)

    def fail(
        self,
        status: int,
        *,
        method: str | None = None,
        plural: str | None = None,
        times: int = 1,
        message: str = "injected failure",
        retry_after: int | None = None,
    ) -> None:
        self.faults.append(
            Fault(
                status=status,
                method=method,
                plural=plural,
                times=times,
                message=message,
                retry_after=retry_after,
            )
        )

    def stall(
        self,
        seconds: float,
        *,
        method: str | None = None,
        plural: str | None = None,
        times: int = 1,
    ) -> None:
        self.faults.append(Fault(delay=seconds, method=method, plural=plural, times=times))

    def race(self, change: Callable[[KubeEmulator], None]) -> None:
        """Run ``change`` once, just before the next write request is applied."""
        self.races.append(change)

    def grant(self, *roles: dict[str, Any]) -> None:
        """Bind these Roles / ClusterRoles to the caller: from now on a review is allowed
        only by one of their rules (``grant()`` with none: nothing is allowed)."""
        self.roles = [*(self.roles or []), *copy.deepcopy(list(roles))]

    def allowed(self, attributes: dict[str, Any]) -> bool:
        """Would the granted roles allow these ``resourceAttributes``?"""
        if self.roles is None:
            return True
        resource = attributes.get("resource", "")
        if attributes.get("subresource"):
            resource = f"{resource}/{attributes['subresource']}"
        namespace = attributes.get("namespace", "")
        for role in self.roles:
            role_namespace = role["metadata"].get("namespace") if role["kind"] == "Role" else None
            if role_namespace is not None and role_namespace != namespace:
                continue
            for rule in role.get("rules", []):
                if (
                    attributes.get("group", "") in rule.get("apiGroups", [])
                    and resource in rule.get("resources", [])
                    and attributes.get("verb") in rule.get("verbs", [])
                ):
                    return True
        return False

    def _review(self, request: rendering.Request) -> aiohttp.web.Response:
        body = dict(request.data)
        attributes = dict(body.get("spec", {}).get("resourceAttributes", {}))
        self.reviews.append(attributes)
        allowed = self.allowed(attributes)
        status = {"allowed": allowed} if allowed else {"allowed": False, "denied": True}
        return aiohttp.web.json_response({**body, "status": status}, status=201)

    # --- serving ----------------------------------------------------------------------
    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        if request.resource is None or request.params.get("watch") == "true":
            return await super()._handle(request)
        for fault in list(self.faults):
            if fault.matches(request):
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                if fault.delay:
                    await asyncio.sleep(fault.delay)
                if fault.status:
                    reason = {403: "Forbidden", 429: "TooManyRequests"}.get(fault.status, "")
                    headers = (
                        None
                        if fault.retry_after is None
                        else {"Retry-After": str(fault.retry_after)}
                    )
                    return _status(fault.status, reason or "InternalError", fault.message, headers)
                break
        method = request.method.value
        if method == "POST" and request.resource.plural == "selfsubjectaccessreviews":
            return self._review(request)
        if method != "GET" and self.races:
            self.races.pop(0)(self)
        try:
            if method == "GET" and request.name is None:
                return aiohttp.web.json_response(self._list(request))
            if method == "GET" and request.subresource == "log":
                return self._log(request)
            if method == "POST" and request.name is None:
                body = dict(request.data)
                meta = body.setdefault("metadata", {})
                meta["namespace"] = request.namespace
                if (request.resource, request.namespace, meta["name"]) in self.objects:
                    raise _Reject(409, "AlreadyExists", f"{meta['name']!r} already exists")
                self.add(body)
                return aiohttp.web.json_response(self._read(request, meta["name"]), status=201)
            if request.name is None or method not in ("GET", "PUT", "PATCH", "DELETE"):
                return await super()._handle(request)
            current = self._read(request, request.name)
            if method == "GET":
                return aiohttp.web.json_response(self._view(request, current))
            if method == "DELETE":
                del self.objects[request.resource, request.namespace, request.name]
                return aiohttp.web.json_response(current)
            return aiohttp.web.json_response(self._write(request, current))
        except _Reject as exc:
            return exc.response

    def _read(self, request: rendering.Request, name: str) -> dict[str, Any]:
        assert request.resource is not None
        key = (request.resource, request.namespace, name)
        if key not in self.objects or self.objects[key].deleted:
            plural = request.resource.plural if request.resource else "?"
            raise _Reject(404, "NotFound", f'{plural} "{name}" not found')
        return copy.deepcopy(self.objects[key].raw)

    def _view(self, request: rendering.Request, obj: dict[str, Any]) -> dict[str, Any]:
        if request.subresource != "scale":
            return obj
        meta = obj["metadata"]
        selector = obj.get("spec", {}).get("selector", {}).get("matchLabels", {})
        return {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion")},
            "spec": {"replicas": obj.get("spec", {}).get("replicas", 1)},
            "status": {
                "replicas": obj.get("status", {}).get("replicas", 0),
                "selector": ",".join(f"{k}={v}" for k, v in selector.items()),
            },
        }

    def _write(self, request: rendering.Request, current: dict[str, Any]) -> dict[str, Any]:
        assert request.resource is not None and request.name is not None
        content_type = request.headers.get("Content-Type", "").split(";")[0]
        view = self._view(request, current)
        if request.method.value == "PUT":
            new = copy.deepcopy(request.data)
        elif content_type == "application/json-patch+json":
            new = json_patch(view, request.data)
        else:
            new = merge(view, request.data, content_type.startswith("application/strategic"))
        sent = new.get("metadata", {}).get("resourceVersion")
        if sent and sent != current["metadata"]["resourceVersion"]:
            raise _Reject(
                409,
                "Conflict",
                (
                    f"Operation cannot be fulfilled on {request.resource.plural}."
                    f'{request.resource.group or "core"} "{request.name}": the object has been '
                    "modified; please apply your changes to the latest version and try again"
                ),
            )
        if request.subresource == "scale":
            if request.resource.plural not in _SCALABLE:
                raise _Reject(404, "NotFound", "the server could not find the requested resource")
            new, new["spec"] = current, {**current["spec"], "replicas": new["spec"]["replicas"]}
        else:
            new["metadata"] = {**current["metadata"], **new.get("metadata", {})}
            if "status" in current:
                new["status"] = current["status"]
        if request.resource.plural == "horizontalpodautoscalers":
            _validate_hpa(request.name, new)
        changed = new.get("spec") != current.get("spec")
        self._store(request.resource, request.namespace, request.name, new, changed)
        return self._view(request, self._read(request, request.name))

    def _store(
        self,
        resource: kmock.resource,
        namespace: str | None,
        name: str,
        obj: dict[str, Any],
        spec_changed: bool,
    ) -> None:
        obj["metadata"]["resourceVersion"] = str(next(self._counter))
        if spec_changed:
            obj["metadata"]["generation"] = obj["metadata"].get("generation", 1) + 1
        self.objects[resource, namespace, name].history.append(obj)

    def _log(self, request: rendering.Request) -> aiohttp.web.Response:
        """GET pods/{name}/log as the real API serves it (text/plain)."""
        assert request.name is not None and request.namespace is not None
        pod = self._read(request, request.name)
        names = [c["name"] for c in pod.get("spec", {}).get("containers", [])]
        container = request.params.get("container")
        if not container:
            if len(names) != 1:
                raise _Reject(
                    400,
                    "BadRequest",
                    f"a container name must be specified for pod {request.name}, "
                    f"choose one of: [{' '.join(names)}]",
                )
            container = names[0]
        elif container not in names:
            raise _Reject(
                400, "BadRequest", f"container {container} is not valid for pod {request.name}"
            )
        previous = request.params.get("previous") == "true"
        lines = self.logs.get((request.namespace, request.name, container, previous))
        if lines is None and previous:
            raise _Reject(
                400,
                "BadRequest",
                f'previous terminated container "{container}" in pod "{request.name}" not found',
            )
        lines = lines or []
        if "tailLines" in request.params:
            tail = int(request.params["tailLines"])
            lines = lines[-tail:] if tail > 0 else []
        body = "".join(f"{line}\n" for line in lines).encode()
        if "limitBytes" in request.params:
            body = body[: int(request.params["limitBytes"])]
        return aiohttp.web.Response(body=body, content_type="text/plain")

    def _list(self, request: rendering.Request) -> dict[str, Any]:
        selector = request.params.get("labelSelector", "")
        plural = request.resource.plural if request.resource is not None else ""
        allowed = _FIELDS | (_EVENT_FIELDS if plural == "events" else set())
        fields = field_terms(request.params.get("fieldSelector", ""), allowed)
        items = [
            obj.raw
            for (res, ns, _), obj in self.objects.items()
            if res == request.resource
            and not obj.deleted
            and (request.namespace is None or ns == request.namespace)
            and selector_matches(selector, obj.raw.get("metadata", {}).get("labels", {}))
            and fields_match(fields, obj.raw)
        ]
        return {
            "apiVersion": "v1",
            "kind": "List",
            "items": copy.deepcopy(items),
            "metadata": {"resourceVersion": str(next(self._counter))},
        }
