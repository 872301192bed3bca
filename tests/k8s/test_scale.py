"""kubernetes.scale through the official client against the emulator."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pydantic
import pytest

from monitor import errors
from monitor.actions import default_registry
from monitor.alerts.context import AlertContext
from monitor.k8s import workloads
from monitor.policy import loader, policyset
from tests.k8s.conftest import context
from tests.support.kube_objects import deployment, hpa


async def run(actions, kube, params, **target):
    action = actions.get("kubernetes.scale")
    parsed = actions.parse_params("kubernetes.scale", params)
    ctx = context(kube, **target)
    plan = await action.plan(parsed, ctx)
    outcome = await action.apply(parsed, ctx, plan)
    return action, parsed, ctx, plan, outcome


def replicas(emulator, name="conea-api"):
    return emulator.read("Deployment", "production", name)["spec"]["replicas"]


async def test_scale_without_hpa_sets_replicas_and_reverts(emulator, kube, actions):
    emulator.add(deployment(replicas=4))
    action, params, ctx, plan, outcome = await run(actions, kube, {"by": "+2"})
    assert plan.summary == "scale production/conea-api 4 -> 6"
    assert replicas(emulator) == 6
    assert [(c.field, c.before, c.after) for c in outcome.changes] == [("spec.replicas", 4, 6)]
    back = await action.revert(params, ctx, outcome.revert_state)
    assert replicas(emulator) == 4
    assert "spec.replicas 6 -> 4" in back.summary


async def test_plan_changes_nothing(emulator, kube, actions):
    emulator.add(deployment(replicas=4))
    action = actions.get("kubernetes.scale")
    plan = await action.plan(
        actions.parse_params("kubernetes.scale", {"replicas": 10}), context(kube)
    )
    assert plan.summary == "scale production/conea-api 4 -> 10"
    assert replicas(emulator) == 4


async def test_hpa_managed_workload_scales_through_min_replicas(emulator, kube, actions):
    emulator.add(deployment(replicas=4))
    emulator.add(hpa(min_replicas=4, max_replicas=10))
    action, params, ctx, plan, outcome = await run(actions, kube, {"by": "50%"})
    assert plan.summary == (
        "scale production/conea-api 4 -> 6 via HPA conea-api minReplicas 4 -> 6"
    )
    spec = emulator.read("HorizontalPodAutoscaler", "production", "conea-api")["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (6, 10)
    assert replicas(emulator) == 4  # the HPA scales the Deployment, not us
    await action.revert(params, ctx, outcome.revert_state)
    spec = emulator.read("HorizontalPodAutoscaler", "production", "conea-api")["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (4, 10)


async def test_hpa_max_replicas_is_raised_when_needed_and_restored(emulator, kube, actions):
    emulator.add(deployment(replicas=8))
    emulator.add(hpa(min_replicas=2, max_replicas=8))
    action, params, ctx, plan, outcome = await run(actions, kube, {"replicas": 12})
    assert plan.summary.endswith("via HPA conea-api minReplicas 2 -> 12, maxReplicas 8 -> 12")
    spec = emulator.read("HorizontalPodAutoscaler", "production", "conea-api")["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (12, 12)
    await action.revert(params, ctx, outcome.revert_state)
    spec = emulator.read("HorizontalPodAutoscaler", "production", "conea-api")["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 8)


async def test_an_hpa_for_another_workload_is_ignored(emulator, kube, actions):
    emulator.add(deployment(replicas=2))
    emulator.add(hpa(target="conea-worker"))
    await run(actions, kube, {"by": 1})
    assert replicas(emulator) == 3


async def test_bounds_clamp_the_result(emulator, kube, actions):
    emulator.add(deployment(replicas=4))
    _, _, _, plan, _ = await run(actions, kube, {"by": "+10", "max": 6})
    assert replicas(emulator) == 6 and plan.details["desired"] == 6
    _, _, _, plan, _ = await run(actions, kube, {"by": -5, "min": 2})
    assert replicas(emulator) == 2


async def test_already_at_the_bound_is_a_noop(emulator, kube, actions):
    emulator.add(deployment(replicas=6))
    _, _, _, plan, outcome = await run(actions, kube, {"by": "+2", "max": 6})
    assert plan.noop and outcome.revert_state is None
    assert outcome.summary.startswith("nothing to change")


async def test_statefulset(emulator, kube, actions):
    sts = deployment(name="redis", replicas=1)
    sts["kind"] = "StatefulSet"
    emulator.add(sts)
    await run(actions, kube, {"replicas": 3}, kind="StatefulSet", name="redis")
    assert emulator.read("StatefulSet", "production", "redis")["spec"]["replicas"] == 3


async def test_a_409_race_won_by_another_writer_is_not_overwritten(emulator, kube, actions):
    emulator.add(deployment(replicas=4))
    action = actions.get("kubernetes.scale")
    params = actions.parse_params("kubernetes.scale", {"by": "+2"})
    ctx = context(kube)
    plan = await action.plan(params, ctx)
    # Another writer scales to 10 between our read and our write.
    emulator.race(
        lambda e: e.modify(
            "Deployment", "production", "conea-api", lambda o: o["spec"].update(replicas=10)
        )
    )
    outcome = await action.apply(params, ctx, plan)
    assert replicas(emulator) == 12  # decided again from 10, not written over with 6
    assert outcome.changes[0].before == 10
    puts = [r for r in emulator if r.method.value == "PUT"]
    assert len(puts) == 2  # the first met the 409


async def test_apply_right_after_its_plan_writes_without_reading_again(emulator, kube, actions):
    """Within an execution, apply writes against the plan's reads; a change in between is
    still caught by the resourceVersion guard and decided again from a fresh read."""
    emulator.add(deployment(replicas=4))
    action = actions.get("kubernetes.scale")
    params = actions.parse_params("kubernetes.scale", {"by": "+2"})
    ctx = dataclasses.replace(context(kube), execution_id="41")
    plan = await action.plan(params, ctx)
    reads = len([r for r in emulator if r.method.value == "GET"])
    await action.apply(params, ctx, plan)
    assert replicas(emulator) == 6
    assert len([r for r in emulator if r.method.value == "GET"]) == reads  # no new read

    ctx = dataclasses.replace(ctx, execution_id="42")
    plan = await action.plan(params, ctx)
    emulator.race(
        lambda e: e.modify(
            "Deployment", "production", "conea-api", lambda o: o["spec"].update(replicas=10)
        )
    )
    outcome = await action.apply(params, ctx, plan)
    assert replicas(emulator) == 12  # the stale write met a 409, then decided from 10
    assert outcome.changes[0].before == 10


async def test_revert_leaves_a_value_someone_else_changed(emulator, kube, actions):
    emulator.add(deployment(replicas=4))
    action, params, ctx, _, outcome = await run(actions, kube, {"replicas": 6})
    emulator.modify("Deployment", "production", "conea-api", lambda o: o["spec"].update(replicas=9))
    back = await action.revert(params, ctx, outcome.revert_state)
    assert replicas(emulator) == 9
    assert "left at 9 (changed by someone else)" in back.summary


async def test_missing_deployment_is_permanent(emulator, kube, actions):
    with pytest.raises(errors.PermanentActionError, match="not found"):
        await run(actions, kube, {"replicas": 2}, name="ghost")


async def test_target_from_labels_naming_another_namespace_is_refused(emulator, kube, actions):
    emulator.add(deployment(namespace="kube-system", name="coredns"))
    with pytest.raises(errors.PermanentActionError, match="'kube-system' is in the deny list"):
        await run(actions, kube, {"replicas": 0}, namespace="kube-system", name="coredns")
    with pytest.raises(errors.PermanentActionError, match="not a valid DNS-1123"):
        await run(actions, kube, {"replicas": 0}, name="conea-api/../../x")
    assert list(emulator) == []  # refused before any call


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "exactly one of 'replicas' and 'by'"),
        ({"replicas": 2, "by": 1}, "exactly one of 'replicas' and 'by'"),
        ({"by": "double"}, "is not \\+N, -N or N%"),
        ({"by": 1, "min": 5, "max": 3}, "min \\(5\\) is greater than max \\(3\\)"),
        ({"replicas": 2, "extra": 1}, "Extra inputs are not permitted"),
    ],
)
def test_bad_params_fail_validation(actions, params, message):
    with pytest.raises(pydantic.ValidationError, match=message):
        actions.parse_params("kubernetes.scale", params)


@pytest.mark.parametrize(
    ("current", "kwargs", "expected"),
    [
        (4, {"replicas": 10}, 10),
        (4, {"by": "+2"}, 6),
        (4, {"by": 2}, 6),
        (4, {"by": "-1"}, 3),
        (4, {"by": "50%"}, 6),
        (3, {"by": "50%"}, 5),
        (4, {"by": "-50%"}, 2),
        (4, {"by": "+10", "maximum": 8}, 8),
        (4, {"by": "-10", "minimum": 1}, 1),
        (1, {"by": -5}, 0),
    ],
)
def test_replica_arithmetic(current, kwargs, expected):
    assert workloads.desired_replicas(current, **kwargs) == expected


async def test_hpa_edited_concurrently_is_read_again(emulator, kube, actions):
    emulator.add(deployment(replicas=4))
    emulator.add(hpa(min_replicas=4, max_replicas=10))

    def other_writer(e):
        def edit(obj):
            obj["spec"]["maxReplicas"] = 20

        e.modify("HorizontalPodAutoscaler", "production", "conea-api", edit)

    emulator.race(other_writer)
    _, _, _, _, outcome = await run(actions, kube, {"replicas": 12})
    spec = emulator.read("HorizontalPodAutoscaler", "production", "conea-api")["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (12, 20)  # their max kept
    assert [c.field for c in outcome.changes] == ["spec.minReplicas"]
    patches = [r for r in emulator if r.method.value == "PATCH"]
    assert len(patches) == 2 and patches[0].headers["Content-Type"] == (
        "application/json-patch+json"
    )


# --- an HPA as the target: its maxReplicas ---------------------------------------------
def autoscaler(name="web-autoscaler", target="conea-api", min_replicas=2, max_replicas=10):
    """An HPA not named after the Deployment it scales."""
    obj = hpa(target=target, min_replicas=min_replicas, max_replicas=max_replicas)
    obj["metadata"]["name"] = name
    return obj


def bounds(emulator, name="web-autoscaler"):
    spec = emulator.read("HorizontalPodAutoscaler", "production", name)["spec"]
    return spec["minReplicas"], spec["maxReplicas"]


HPA_TARGET = {"kind": "HorizontalPodAutoscaler", "name": "web-autoscaler"}


async def test_an_hpa_target_raises_its_max_replicas_and_revert_restores_it(
    emulator, kube, actions
):
    emulator.add(deployment(replicas=10))
    emulator.add(autoscaler(max_replicas=10))
    action, params, ctx, plan, outcome = await run(
        actions, kube, {"by": 2, "max": 30}, **HPA_TARGET
    )
    assert plan.summary == "raise HPA production/web-autoscaler maxReplicas 10 -> 12"
    assert plan.details["scales"] == "Deployment/conea-api"
    assert bounds(emulator) == (2, 12)  # minReplicas left alone: the HPA still decides
    assert replicas(emulator) == 10  # the HPA scales the Deployment, not us
    assert [(c.resource, c.field, c.before, c.after) for c in outcome.changes] == [
        ("HorizontalPodAutoscaler/web-autoscaler", "spec.maxReplicas", 10, 12)
    ]
    patch = next(r for r in emulator if r.method.value == "PATCH")
    assert patch.headers["Content-Type"] == "application/json-patch+json"
    assert patch.data[0]["path"] == "/metadata/resourceVersion"  # guarded by what it read

    back = await action.revert(params, ctx, outcome.revert_state)
    assert bounds(emulator) == (2, 10)
    assert back.summary == (
        "revert scale of HPA production/web-autoscaler: "
        "HorizontalPodAutoscaler/web-autoscaler spec.maxReplicas 12 -> 10"
    )


async def test_an_hpa_plan_writes_nothing_and_its_kind_may_be_spelled_hpa(emulator, kube, actions):
    emulator.add(autoscaler(max_replicas=10))
    plan = await actions.get("kubernetes.scale").plan(
        actions.parse_params("kubernetes.scale", {"replicas": 15}),
        context(kube, kind="hpa", name="web-autoscaler"),
    )
    assert plan.summary == "raise HPA production/web-autoscaler maxReplicas 10 -> 15"
    assert bounds(emulator) == (2, 10)
    assert [r.method.value for r in emulator] == ["GET"]


async def test_an_hpa_at_the_bound_is_left_alone(emulator, kube, actions):
    emulator.add(autoscaler(max_replicas=30))
    _, _, _, plan, outcome = await run(actions, kube, {"by": 2, "max": 30}, **HPA_TARGET)
    assert plan.noop and outcome.revert_state is None
    assert outcome.summary == (
        "nothing to change: keep HPA production/web-autoscaler maxReplicas at 30"
    )
    assert not [r for r in emulator if r.method.value == "PATCH"]


async def test_an_hpa_max_is_not_lowered_below_its_min(emulator, kube, actions):
    emulator.add(autoscaler(min_replicas=4, max_replicas=10))
    _, _, _, plan, _ = await run(actions, kube, {"by": "-50%"}, **HPA_TARGET)
    assert plan.summary == "lower HPA production/web-autoscaler maxReplicas 10 -> 5"
    _, _, _, plan, _ = await run(actions, kube, {"replicas": 1}, **HPA_TARGET)
    assert plan.summary == (
        "lower HPA production/web-autoscaler maxReplicas 5 -> 4 (not below its minReplicas 4)"
    )
    assert bounds(emulator) == (4, 4)


async def test_an_hpa_edited_between_read_and_write_is_decided_again(emulator, kube, actions):
    emulator.add(autoscaler(max_replicas=10))
    emulator.race(
        lambda e: e.modify(
            "HorizontalPodAutoscaler",
            "production",
            "web-autoscaler",
            lambda o: o["spec"].update(maxReplicas=20),
        )
    )
    _, _, _, _, outcome = await run(actions, kube, {"by": 2}, **HPA_TARGET)
    assert bounds(emulator) == (2, 22)  # from their 20, not over it with 12
    assert (outcome.changes[0].before, outcome.changes[0].after) == (20, 22)


async def test_revert_of_an_hpa_max_leaves_what_changed_since(emulator, kube, actions):
    emulator.add(autoscaler(min_replicas=2, max_replicas=10))
    action, params, ctx, _, outcome = await run(actions, kube, {"by": 4}, **HPA_TARGET)
    # Someone raised the floor above the old maximum: 10 is no longer a valid maximum.
    emulator.modify(
        "HorizontalPodAutoscaler",
        "production",
        "web-autoscaler",
        lambda o: o["spec"].update(minReplicas=12),
    )
    back = await action.revert(params, ctx, outcome.revert_state)
    assert bounds(emulator) == (12, 14)
    assert back.summary.endswith("spec.maxReplicas left at 14 (its minReplicas is 12 now)")
    assert back.changes == []

    emulator.modify(
        "HorizontalPodAutoscaler",
        "production",
        "web-autoscaler",
        lambda o: o["spec"].update(minReplicas=2, maxReplicas=16),
    )
    back = await action.revert(params, ctx, outcome.revert_state)
    assert bounds(emulator) == (2, 16)
    assert back.summary.endswith("spec.maxReplicas left at 16 (changed by someone else)")


async def test_a_missing_hpa_is_permanent(emulator, kube, actions):
    emulator.add(deployment(name="web-autoscaler"))  # a Deployment of that name is no HPA
    with pytest.raises(errors.PermanentActionError, match="not found"):
        await run(actions, kube, {"by": 2}, **HPA_TARGET)
    assert replicas(emulator, "web-autoscaler") == 4


async def test_a_deployment_whose_hpa_has_another_name_scales_through_that_hpa(
    emulator, kube, actions
):
    """The HPA is found by its scaleTargetRef, whatever its name: the Deployment's replicas
    are never written while an HPA would undo them."""
    emulator.add(deployment(replicas=4))
    emulator.add(autoscaler(min_replicas=4, max_replicas=10))
    _, _, _, plan, _ = await run(actions, kube, {"by": 2})
    assert plan.summary == (
        "scale production/conea-api 4 -> 6 via HPA web-autoscaler minReplicas 4 -> 6"
    )
    assert bounds(emulator) == (6, 10) and replicas(emulator) == 4
    assert not [r for r in emulator if r.method.value == "PUT"]


async def test_kube_prometheus_stacks_hpa_maxed_out_raises_the_named_hpa(emulator, kube, actions):
    """The optional policy answers KubeHpaMaxedOut on an HPA not named after its
    Deployment: the HPA's maxReplicas goes up, the Deployment is not touched."""
    emulator.add(deployment(replicas=10))
    emulator.add(autoscaler(max_replicas=10))
    kps = Path(__file__).resolve().parents[2] / "remediations/optional/kube-prometheus-stack.yaml"
    registry = default_registry()
    policy = loader.load([kps], registry).get("kps-hpa-maxed-out")
    assert policy is not None
    alert = AlertContext(
        labels={
            "alertname": "KubeHpaMaxedOut",
            "namespace": "production",
            "horizontalpodautoscaler": "web-autoscaler",
        },
        annotations={},
        status="firing",
        fingerprint="f",
        starts_at=datetime(2026, 11, 29, 12, 0, tzinfo=UTC),
    )
    [step] = policy.steps[0]
    params = policyset.parse_params(step, alert, registry)
    target = policyset.render_target(policy, alert)
    action = actions.get("kubernetes.scale")
    ctx = context(kube, **target)
    plan = await action.plan(params, ctx)
    assert plan.summary == "raise HPA production/web-autoscaler maxReplicas 10 -> 12"
    await action.apply(params, ctx, plan)
    assert bounds(emulator) == (2, 12) and replicas(emulator) == 10
