"""``kubernetes.scale``: replicas of a Deployment or StatefulSet, through its HPA if any;
or an HPA's ``maxReplicas`` when the target is the HorizontalPodAutoscaler itself."""

from __future__ import annotations

import copy
import re
import time
from typing import Any

from pydantic import Field, field_validator, model_validator

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

Decided = tuple[Plan, dict[str, Any], dict[str, Any] | None]
OBSERVED_FOR = 2.0  # seconds a plan's reads stand in for apply's
HPA = "HorizontalPodAutoscaler"
KINDS = (*common.WORKLOADS, HPA)
MIN, MAX = "spec.minReplicas", "spec.maxReplicas"


class ScaleParams(StrictModel):
    replicas: int | None = Field(None, ge=0)
    by: int | str | None = None
    min: int | None = Field(None, ge=0)
    max: int | None = Field(None, ge=1)

    @field_validator("by")
    @classmethod
    def _by(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, str) and not re.fullmatch(r"[+-]?\d+%?", value.strip()):
            raise ValueError(f"by: {value!r} is not +N, -N or N%")
        return value

    @model_validator(mode="after")
    def _one_of(self) -> ScaleParams:
        if (self.replicas is None) == (self.by is None):
            raise ValueError("give exactly one of 'replicas' and 'by'")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class Scale(Action[ScaleParams]):
    """Scales a workload, through its HPA's min/maxReplicas when an HPA targets it; with an
    HPA as the target, moves its maxReplicas (the replica count stays the HPA's call)."""

    name = "kubernetes.scale"
    Params = ScaleParams
    timeout = common.WRITE_TIMEOUT
    revertible = True
    rbac = (
        RbacRule(("apps",), ("deployments/scale", "statefulsets/scale"), ("get", "update")),
        RbacRule(("autoscaling",), ("horizontalpodautoscalers",), ("get", "list", "patch")),
    )

    async def _decide(self, kube: k8s_client.Kube, t: names.Target, params: ScaleParams) -> Decided:
        if t.kind == HPA:
            return await self._decide_max(kube, t, params)
        scale = await kube.read_scale(t.kind, t.namespace, t.name)
        hpa = workloads.hpa_for(
            await kube.list("HorizontalPodAutoscaler", t.namespace), t.kind, t.name
        )
        current = int(scale.get("spec", {}).get("replicas") or 0)
        want = workloads.desired_replicas(
            current, replicas=params.replicas, by=params.by, minimum=params.min, maximum=params.max
        )
        summary = f"scale {t.namespace}/{t.name} {current} -> {want}"
        if hpa is None:
            changes = (
                [
                    Change(
                        resource=f"{t.kind}/{t.name}",
                        field="spec.replicas",
                        before=current,
                        after=want,
                    )
                ]
                if want != current
                else []
            )
        else:
            spec = hpa["spec"]
            low, high = int(spec.get("minReplicas") or 1), int(spec["maxReplicas"])
            new_low, new_high = max(want, 1), max(high, want, 1)
            resource = f"HorizontalPodAutoscaler/{hpa['metadata']['name']}"
            changes = [
                Change(resource=resource, field=f, before=b, after=a)
                for f, b, a in (
                    ("spec.minReplicas", low, new_low),
                    ("spec.maxReplicas", high, new_high),
                )
                if a != b
            ]
            summary += f" via HPA {hpa['metadata']['name']} " + (
                ", ".join(f"{c.field.split('.')[1]} {c.before} -> {c.after}" for c in changes)
                or f"minReplicas {low} (unchanged)"
            )
        plan = Plan(
            action=self.name,
            summary=summary,
            changes=changes,
            noop=not changes,
            details={
                "current": current,
                "desired": want,
                "hpa": hpa["metadata"]["name"] if hpa else None,
            },
        )
        return plan, scale, hpa

    async def _decide_max(
        self, kube: k8s_client.Kube, t: names.Target, params: ScaleParams
    ) -> Decided:
        """The HPA's ``spec.maxReplicas`` moved as ``params`` say, never below its
        ``minReplicas`` (the API refuses that)."""
        hpa = await kube.read(HPA, t.namespace, t.name)
        spec = hpa.get("spec") or {}
        current, low = spec.get("maxReplicas"), spec.get("minReplicas") or 1
        if not isinstance(current, int) or not isinstance(low, int):
            raise errors.PermanentActionError(
                f"HPA {t.namespace}/{t.name} has no integer spec.maxReplicas/minReplicas "
                f"({current!r}, {low!r}); refusing"
            )
        want = workloads.desired_replicas(
            current, replicas=params.replicas, by=params.by, minimum=params.min, maximum=params.max
        )
        held = ""
        if want < low:
            want, held = low, f" (not below its minReplicas {low})"
        verb = "raise" if want > current else "lower" if want < current else ""
        summary = (
            f"{verb} HPA {t.namespace}/{t.name} maxReplicas {current} -> {want}{held}"
            if verb
            else f"keep HPA {t.namespace}/{t.name} maxReplicas at {current}"
        )
        ref = spec.get("scaleTargetRef") or {}
        changes = (
            [Change(resource=f"{HPA}/{t.name}", field=MAX, before=current, after=want)]
            if want != current
            else []
        )
        plan = Plan(
            action=self.name,
            summary=summary,
            changes=changes,
            noop=not changes,
            details={
                "current": current,
                "desired": want,
                "hpa": t.name,
                "scales": f"{ref.get('kind', '?')}/{ref.get('name', '?')}",
            },
        )
        return plan, {}, hpa

    def __init__(self) -> None:
        # What a plan read, for the apply that follows it at once (by execution id).
        self._observed: dict[str, tuple[float, Decided]] = {}

    async def plan(self, params: ScaleParams, ctx: ActionContext) -> Plan:
        kube = common.kube(ctx)
        t = await common.workload(ctx, kube, KINDS)
        decided = await self._decide(kube, t, params)
        if ctx.execution_id is not None and not ctx.dry_run:
            now = time.monotonic()
            for key, (at, _) in list(self._observed.items()):
                if now - at > OBSERVED_FOR:
                    del self._observed[key]
            self._observed[ctx.execution_id] = (now, decided)
        return common.shown(decided[0], t)

    async def apply(self, params: ScaleParams, ctx: ActionContext, plan: Plan) -> Outcome:
        kube = common.kube(ctx)
        t = await common.workload(ctx, kube, KINDS)
        seen = self._observed.pop(ctx.execution_id or "", None)
        # Right after its plan, apply writes against what the plan read: the write is
        # guarded by that resourceVersion, so a change in between is a conflict, and the
        # conflict is retried with a fresh read (common.fresh). Otherwise, read again.
        reuse = [seen[1]] if seen and time.monotonic() - seen[0] < OBSERVED_FOR else []

        async def attempt() -> Outcome:
            fresh, scale, hpa = reuse.pop() if reuse else await self._decide(kube, t, params)
            if not fresh.noop:
                await _write(kube, t, scale, hpa, {c.field: c.after for c in fresh.changes})
            state = {
                "kind": t.kind,
                "namespace": t.namespace,
                "name": t.name,
                "hpa": hpa["metadata"]["name"] if hpa else None,
                "changes": [c.model_dump() for c in fresh.changes],
            }
            done = "nothing to change: " if fresh.noop else ""
            return Outcome(
                summary=done + fresh.summary,
                changes=fresh.changes,
                details=fresh.details,
                revert_state=state if fresh.changes else None,
            )

        return await common.fresh(attempt)

    async def revert(
        self, params: ScaleParams, ctx: ActionContext, state: dict[str, Any]
    ) -> Outcome:
        kube = common.kube(ctx)
        t = names.target(state, kube.scope, KINDS)
        recorded = [Change.model_validate(c) for c in state.get("changes", [])]
        what = f"HPA {t.namespace}/{t.name}" if t.kind == HPA else f"{t.namespace}/{t.name}"

        async def attempt() -> Outcome:
            scale = {} if t.kind == HPA else await kube.read_scale(t.kind, t.namespace, t.name)
            hpa = (
                await kube.read(HPA, t.namespace, names.validate_name(state["hpa"], "HPA name"))
                if state.get("hpa")
                else None
            )
            obj = hpa if hpa is not None else scale
            back: list[Change] = []
            kept: list[tuple[Change, str]] = []
            for change in recorded:
                now = _field(obj, change.field)
                undo = Change(
                    resource=change.resource, field=change.field, before=now, after=change.before
                )
                if now == change.after:
                    back.append(undo)
                else:
                    kept.append((undo, "changed by someone else"))
            # An HPA's maxReplicas may not go below its minReplicas: the API refuses it.
            low = next((c.after for c in back if c.field == MIN), _field(obj, MIN) or 1)
            for undo in [c for c in back if c.field == MAX and c.after < low]:
                back.remove(undo)
                kept.append((undo, f"its minReplicas is {low} now"))
            if back:
                await _write(kube, t, scale, hpa, {c.field: c.after for c in back})
            words = [f"{c.resource} {c.field} {c.before} -> {c.after}" for c in back]
            words += [f"{c.resource} {c.field} left at {c.before} ({why})" for c, why in kept]
            return Outcome(
                summary=f"revert scale of {what}: " + ("; ".join(words) or "nothing recorded"),
                changes=back,
            )

        return await common.fresh(attempt)


def _field(obj: dict[str, Any], dotted: str) -> Any:
    node: Any = obj
    for part in dotted.split("."):
        node = (node or {}).get(part)
    return node


async def _write(
    kube: k8s_client.Kube,
    t: names.Target,
    scale: dict[str, Any],
    hpa: dict[str, Any] | None,
    values: dict[str, Any],
) -> None:
    """Write ``values`` (dotted field -> value) to the HPA, else the Scale subresource.

    The HPA gets a JSON patch of just those fields, guarded by its resourceVersion (a PUT
    of the whole object would drop fields the client's models do not know)."""
    if hpa is not None:
        ops = [common.guard(hpa)] + [
            {"op": "add", "path": "/" + dotted.replace(".", "/"), "value": value}
            for dotted, value in values.items()
        ]
        await kube.patch(
            "HorizontalPodAutoscaler", t.namespace, hpa["metadata"]["name"], ops, "json"
        )
        return
    obj = copy.deepcopy(scale)
    obj["spec"]["replicas"] = values["spec.replicas"]
    await kube.replace_scale(t.kind, t.namespace, t.name, obj)
