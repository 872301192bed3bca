"""The Kubernetes client of the service: configuration, worker threads, mapped errors.

The official ``kubernetes`` client is blocking; every call runs in a worker thread
(:func:`monitor.threads.run`). Each method makes ONE request: a failure reaches the caller as
a :mod:`monitor.errors` exception (:mod:`monitor.k8s.errors`): temporary for 429, 5xx,
timeouts and transport errors, with the ``Retry-After`` as its ``delay``. Retrying is the
action runner's job (:mod:`monitor.actions.runner`); urllib3's retries are off.
Objects go in and come out as plain dicts in the API's own JSON shape
(``metadata.resourceVersion``...).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import kubernetes.client
import kubernetes.config
import orjson
from kubernetes.config import config_exception

from monitor import errors, threads
from monitor import scope as scope_mod
from monitor.k8s import errors as k8s_errors

RETRY_DELAY = 1.0
"""The ``delay`` of a temporary failure when the API server gives no Retry-After."""


@dataclass(frozen=True)
class Kind:
    api: str  # attribute of Kube holding the API object
    snake: str  # in method names: read_namespaced_<snake>
    resource: str  # for messages and RBAC: "deployments.apps"


KINDS = {
    "Deployment": Kind("apps", "deployment", "deployments.apps"),
    "StatefulSet": Kind("apps", "stateful_set", "statefulsets.apps"),
    "DaemonSet": Kind("apps", "daemon_set", "daemonsets.apps"),
    "ReplicaSet": Kind("apps", "replica_set", "replicasets.apps"),
    "Pod": Kind("core", "pod", "pods"),
    "Event": Kind("core", "event", "events"),
    "Job": Kind("batch", "job", "jobs.batch"),
    "HorizontalPodAutoscaler": Kind(
        "autoscaling", "horizontal_pod_autoscaler", "horizontalpodautoscalers.autoscaling"
    ),
}

PatchType = Literal["strategic", "merge", "json"]
_CONTENT_TYPES = {
    "strategic": "application/strategic-merge-patch+json",
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
}


class Kube:
    """Asynchronous access to the few resources the actions touch.

    ``scope`` says which namespaces actions may touch (:mod:`monitor.scope`, the rule the
    engine's guardrail applies; default: any but ``kube-*``);
    ``timeout`` is (connect, read) seconds per request; ``retry_delay`` is the ``delay``
    of a temporary failure without a Retry-After.
    """

    def __init__(
        self,
        api_client: kubernetes.client.ApiClient,
        *,
        scope: scope_mod.Scope | None = None,
        timeout: tuple[float, float] = (3.0, 10.0),
        retry_delay: float = RETRY_DELAY,
    ) -> None:
        self.api_client = api_client
        self.scope = scope or scope_mod.Scope()
        self.timeout = timeout
        self.retry_delay = retry_delay
        self.core = kubernetes.client.CoreV1Api(api_client)
        self.apps = kubernetes.client.AppsV1Api(api_client)
        self.autoscaling = kubernetes.client.AutoscalingV2Api(api_client)
        self.batch = kubernetes.client.BatchV1Api(api_client)
        self.authorization = kubernetes.client.AuthorizationV1Api(api_client)

    @property
    def host(self) -> str:
        return str(self.api_client.configuration.host)

    def close(self) -> None:
        self.api_client.close()

    async def _call(
        self,
        call: k8s_errors.Call,
        fn: Callable[..., Any],
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        as_text = bool(kwargs.pop("_text", False))  # a log: text, not JSON
        kwargs["_request_timeout"] = self.timeout
        # The raw JSON, not the client's typed models: building and flattening them cost
        # more than the request (bench/remediate.py), and they drop fields they don't know.
        kwargs["_preload_content"] = False

        def blocking() -> Any:
            try:
                response = fn(*args, **kwargs)
                try:
                    data = response.data
                finally:
                    response.release_conn()
            except Exception as exc:
                raise k8s_errors.translate(exc, call, self.retry_delay) from exc
            if as_text:
                return bytes(data or b"").decode("utf-8", errors="replace")
            return orjson.loads(data) if data else {}

        return await threads.run(blocking)

    def _method(self, verb: str, kind: str, suffix: str = "") -> tuple[Kind, Callable[..., Any]]:
        try:
            spec = KINDS[kind]
        except KeyError:
            raise errors.PermanentActionError(f"unsupported kind {kind!r}") from None
        name = f"{verb}_namespaced_{spec.snake}{suffix}"
        return spec, getattr(getattr(self, spec.api), name)

    async def read(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        spec, fn = self._method("read", kind)
        call = k8s_errors.Call("get", spec.resource, namespace, name)
        return dict(await self._call(call, fn, name, namespace))

    async def list(
        self,
        kind: str,
        namespace: str,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        spec, fn = self._method("list", kind)
        call = k8s_errors.Call("list", spec.resource, namespace)
        kwargs: dict[str, Any] = {"label_selector": label_selector} if label_selector else {}
        if field_selector:
            kwargs["field_selector"] = field_selector
        result = await self._call(call, fn, namespace, **kwargs)
        return list(result.get("items") or [])

    async def pod_log(
        self,
        namespace: str,
        name: str,
        *,
        container: str | None = None,
        tail_lines: int | None = None,
        previous: bool = False,
        limit_bytes: int | None = None,
    ) -> str:
        """A pod's log (GET pods/{name}/log) as text: the last ``tail_lines`` lines of
        ``container`` (of its previous instance if ``previous``), at most ``limit_bytes``."""
        call = k8s_errors.Call("get", "pods/log", namespace, name)
        kwargs: dict[str, Any] = {}
        if container:
            kwargs["container"] = container
        if tail_lines is not None:
            kwargs["tail_lines"] = tail_lines
        if previous:
            kwargs["previous"] = True
        if limit_bytes is not None:
            kwargs["limit_bytes"] = limit_bytes
        kwargs["_text"] = True
        fn = self.core.read_namespaced_pod_log
        return str(await self._call(call, fn, name, namespace, **kwargs))

    async def replace(
        self, kind: str, namespace: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """PUT: fails with :class:`~monitor.k8s.errors.ConflictError` when
        ``body["metadata"]["resourceVersion"]`` is no longer current."""
        spec, fn = self._method("replace", kind)
        call = k8s_errors.Call("update", spec.resource, namespace, name)
        return dict(await self._call(call, fn, name, namespace, body))

    async def patch(
        self, kind: str, namespace: str, name: str, body: Any, patch_type: PatchType = "strategic"
    ) -> dict[str, Any]:
        """PATCH; a patch carrying ``metadata.resourceVersion`` is guarded by it."""
        spec, fn = self._method("patch", kind)
        call = k8s_errors.Call("patch", spec.resource, namespace, name)
        return dict(
            await self._call(
                call, fn, name, namespace, body, _content_type=_CONTENT_TYPES[patch_type]
            )
        )

    async def delete(
        self, kind: str, namespace: str, name: str, grace_period_seconds: int | None = None
    ) -> dict[str, Any]:
        spec, fn = self._method("delete", kind)
        call = k8s_errors.Call("delete", spec.resource, namespace, name)
        kwargs = (
            {} if grace_period_seconds is None else {"grace_period_seconds": grace_period_seconds}
        )
        return dict(await self._call(call, fn, name, namespace, **kwargs) or {})

    async def read_scale(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        spec, fn = self._method("read", kind, "_scale")
        call = k8s_errors.Call("get", f"{spec.resource}/scale", namespace, name)
        return dict(await self._call(call, fn, name, namespace))

    async def replace_scale(
        self, kind: str, namespace: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        spec, fn = self._method("replace", kind, "_scale")
        call = k8s_errors.Call("update", f"{spec.resource}/scale", namespace, name)
        return dict(await self._call(call, fn, name, namespace, body))

    async def access_review(
        self, verb: str, group: str, resource: str, namespace: str
    ) -> dict[str, Any]:
        """A SelfSubjectAccessReview: may this client ``verb`` ``resource`` (``plural`` or
        ``plural/subresource``) of ``group`` in ``namespace`` ("" means every namespace)?
        The answer's ``status`` says (``allowed``, ``denied``, ``reason``)."""
        plural, _, subresource = resource.partition("/")
        attributes = {"verb": verb, "group": group, "resource": plural}
        if subresource:
            attributes["subresource"] = subresource
        if namespace:
            attributes["namespace"] = namespace
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes},
        }
        call = k8s_errors.Call(
            "create", "selfsubjectaccessreviews.authorization.k8s.io", namespace or "(all)"
        )
        fn = self.authorization.create_self_subject_access_review
        return dict(await self._call(call, fn, body))


def _configuration() -> kubernetes.client.Configuration:
    cfg = kubernetes.client.Configuration()
    cfg.retries = False  # one request per call: only the action runner retries
    return cfg


def for_host(
    host: str,
    *,
    token: str | None = None,
    verify_ssl: bool = True,
    scope: scope_mod.Scope | None = None,
    **options: Any,
) -> Kube:
    """A client for an explicit API server URL (tests, a local proxy)."""
    cfg = _configuration()
    cfg.host = host.rstrip("/")
    cfg.verify_ssl = verify_ssl
    if token:
        cfg.api_key = {"BearerToken": token}
        cfg.api_key_prefix = {"BearerToken": "Bearer"}
    return Kube(kubernetes.client.ApiClient(cfg), scope=scope, **options)


def from_settings(
    kubeconfig: str | None,
    context: str | None,
    in_cluster: bool,
    *,
    scope: scope_mod.Scope | None = None,
    **options: Any,
) -> Kube | None:
    """The service's client, or ``None`` when no credentials exist at all.

    ``in_cluster=True`` uses the pod's service account (and fails if there is none);
    otherwise ``kubeconfig`` (or ``$KUBECONFIG``, or ``~/.kube/config``) with ``context``;
    with neither a kubeconfig nor a service account, ``None``: Kubernetes actions are
    then unavailable and policies using them fail ``conea-monitor check``.
    """
    cfg = _configuration()
    try:
        if in_cluster:
            kubernetes.config.load_incluster_config(client_configuration=cfg)
        else:
            path = (
                kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
            )
            if os.path.exists(path.split(os.pathsep)[0]):
                kubernetes.config.load_kube_config(
                    config_file=path, context=context, client_configuration=cfg
                )
            elif kubeconfig:
                raise errors.ConfigError(f"kubeconfig {kubeconfig!r} does not exist")
            elif os.environ.get("KUBERNETES_SERVICE_HOST"):
                kubernetes.config.load_incluster_config(client_configuration=cfg)
            else:
                return None
    except config_exception.ConfigException as exc:
        where = "in-cluster service account" if in_cluster else f"kubeconfig {kubeconfig!r}"
        raise errors.ConfigError(f"cannot load Kubernetes credentials from {where}: {exc}") from exc
    cfg.retries = False
    return Kube(kubernetes.client.ApiClient(cfg), scope=scope, **options)
