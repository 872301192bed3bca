"""``kubernetes.set_env``: ``kubectl set env``, remembering previous values for revert."""

from __future__ import annotations

import copy
import re
from typing import Any

from pydantic import Field, field_validator

from monitor import errors
from monitor.actions.kubernetes import common
from monitor.actions.registry import (
    Action,
    ActionContext,
    Change,
    Outcome,
    Plan,
    RbacRule,
    StrictModel,
)
from monitor.k8s import client as k8s_client
from monitor.k8s import names, workloads


class SetEnvParams(StrictModel):
    env: dict[str, str] = Field(min_length=1)
    containers: list[str] | None = None  # None: every container

    @field_validator("env")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not re.fullmatch(r"[-._a-zA-Z][-._a-zA-Z0-9]*", key):
                raise ValueError(f"{key!r} is not a valid environment variable name")
        return value


class SetEnv(Action[SetEnvParams]):
    """``kubectl set env``: variables on named containers (or all); revert restores them."""

    name = "kubernetes.set_env"
    Params = SetEnvParams
    timeout = common.WRITE_TIMEOUT
    revertible = True
    rbac = (RbacRule(("apps",), ("deployments", "statefulsets"), ("get", "patch")),)

    @staticmethod
    def _changes(
        t: names.Target, obj: dict[str, Any], params: SetEnvParams
    ) -> list[tuple[str, str, Any, dict[str, Any]]]:
        found = workloads.containers(obj)
        chosen = params.containers or [c["name"] for c in found]
        known = {c["name"]: c for c in found}
        missing = [c for c in chosen if c not in known]
        if missing:
            raise errors.PermanentActionError(
                f"{t} has no container {', '.join(map(repr, missing))} "
                f"(it has {', '.join(map(repr, known))})"
            )
        out = []
        for cname in chosen:
            for var, value in params.env.items():
                before = workloads.env_entry(known[cname], var)
                after = {"name": var, "value": value}
                if before != after:
                    out.append((cname, var, before, after))
        return out

    async def plan(self, params: SetEnvParams, ctx: ActionContext) -> Plan:
        kube = common.kube(ctx)
        t = await common.workload(ctx, kube)
        todo = self._changes(t, await kube.read(t.kind, t.namespace, t.name), params)
        changes = [_env_change(t, c, v, b, a) for c, v, b, a in todo]
        words = ", ".join(f"{c.field} {c.before!r} -> {c.after!r}" for c in changes)
        plan = Plan(
            action=self.name,
            changes=changes,
            noop=not changes,
            summary=f"set env on {t}: {words or 'already set'}",
        )
        return common.shown(plan, t)

    async def apply(self, params: SetEnvParams, ctx: ActionContext, plan: Plan) -> Outcome:
        kube = common.kube(ctx)
        t = await common.workload(ctx, kube)

        async def attempt() -> Outcome:
            obj = await kube.read(t.kind, t.namespace, t.name)
            todo = self._changes(t, obj, params)
            if todo:
                await _put_env(kube, t, obj, [(c, v, a) for c, v, _, a in todo])
            state = {
                "kind": t.kind,
                "namespace": t.namespace,
                "name": t.name,
                "env": [[c, v, b, a] for c, v, b, a in todo],
            }
            changes = [_env_change(t, c, v, b, a) for c, v, b, a in todo]
            words = ", ".join(f"{c.field} {c.before!r} -> {c.after!r}" for c in changes)
            return Outcome(
                summary=f"set env on {t}: {words or 'already set'}",
                changes=changes,
                revert_state=state if todo else None,
            )

        return await common.fresh(attempt)

    async def revert(
        self, params: SetEnvParams, ctx: ActionContext, state: dict[str, Any]
    ) -> Outcome:
        kube = common.kube(ctx)
        t = names.target(state, kube.scope, common.WORKLOADS)

        async def attempt() -> Outcome:
            obj = await kube.read(t.kind, t.namespace, t.name)
            known = {c["name"]: c for c in workloads.containers(obj)}
            back: list[tuple[str, str, Any, Any]] = []
            kept: list[tuple[str, str, Any, Any]] = []
            for cname, var, before, after in state["env"]:
                now = workloads.env_entry(known.get(cname, {}), var)
                (back if now == after else kept).append((cname, var, now, before))
            if back:
                await _put_env(kube, t, obj, [(c, v, b) for c, v, _, b in back])
            words = [f"{c}.{v} restored" for c, v, _, _ in back]
            words += [f"{c}.{v} left as is (changed by someone else)" for c, v, _, _ in kept]
            return Outcome(
                summary=f"revert env on {t}: " + ("; ".join(words) or "nothing"),
                changes=[_env_change(t, c, v, n, b) for c, v, n, b in back],
            )

        return await common.fresh(attempt)


def _env_change(t: names.Target, container: str, var: str, before: Any, after: Any) -> Change:
    def shown(entry: Any) -> Any:
        return entry.get("value", entry) if isinstance(entry, dict) else entry

    return Change(
        resource=f"{t.kind}/{t.name}",
        field=f"{container}.env.{var}",
        before=shown(before),
        after=shown(after),
    )


async def _put_env(
    kube: k8s_client.Kube,
    t: names.Target,
    obj: dict[str, Any],
    entries: list[tuple[str, str, dict[str, Any] | None]],
) -> None:
    """JSON-patch the env lists of the containers concerned, guarded by resourceVersion."""
    found = workloads.containers(obj)
    index = {c["name"]: i for i, c in enumerate(found)}
    envs: dict[str, dict[str, Any]] = {}
    for cname, var, entry in entries:
        container = envs.setdefault(cname, copy.deepcopy(found[index[cname]]))
        workloads.set_env_entry(container, var, entry)
    ops = [common.guard(obj)] + [
        {"op": "add", "path": f"/spec/template/spec/containers/{index[c]}/env", "value": e["env"]}
        for c, e in envs.items()
    ]
    await kube.patch(t.kind, t.namespace, t.name, ops, "json")
