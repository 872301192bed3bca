"""The Kubernetes diagnostics against the emulator: the target's pods, their events and
their logs, as the real API serves them; caps, redaction and failures."""

from __future__ import annotations

from typing import Any

import pytest

from monitor import errors
from monitor.actions import registry
from monitor.actions.diagnose import common
from monitor.actions.diagnose import kubernetes as diagnose
from monitor.k8s import client
from tests.k8s.conftest import context
from tests.support import kube_emulator
from tests.support.kube_objects import deployment_with_pods, event, pod_status


async def gather(
    action: type[registry.Action[Any]], kube: client.Kube, **params: Any
) -> registry.Outcome:
    diagnostic = action()
    parsed = action.Params.model_validate(params)
    ctx = context(kube)
    plan = await diagnostic.plan(parsed, ctx)
    assert plan.noop
    return await diagnostic.apply(parsed, ctx, plan)


def seed(emulator: kube_emulator.KubeEmulator, pods: int = 3) -> list[dict[str, Any]]:
    dep, rs, *made = deployment_with_pods(pods=pods)
    pod_status(
        made[0], ready=False, restarts=7, waiting="CrashLoopBackOff", last_terminated="Error"
    )
    for other in made[1:]:
        pod_status(other, node="node-2")
    for obj in (dep, rs, *made):
        emulator.add(obj)
    # another deployment's pod, in the same namespace: not ours
    _, _, stranger = deployment_with_pods("conea-web", pods=1)
    emulator.add(stranger)
    return made


async def test_pods_lists_the_targets_pods_not_ready_first(
    emulator: kube_emulator.KubeEmulator, kube: client.Kube
) -> None:
    seed(emulator)
    out = await gather(diagnose.Pods, kube)
    result = out.details["result"]
    assert result["kind"] == "table"
    assert result["columns"] == diagnose.Pods.COLUMNS
    assert [row[:6] for row in result["rows"]] == [
        ["conea-api-7d9f-x0", "CrashLoopBackOff", "0/1", 7, "Error (exit 1)", "node-1"],
        ["conea-api-7d9f-x1", "Running", "1/1", 0, "", "node-2"],
        ["conea-api-7d9f-x2", "Running", "1/1", 0, "", "node-2"],
    ]
    assert out.summary == (
        "3 pods of deployment production/conea-api, 1 not ready (CrashLoopBackOff, 7 restarts)"
    )
    assert out.details["truncated"] is False


async def test_pods_honours_its_limit(
    emulator: kube_emulator.KubeEmulator, kube: client.Kube
) -> None:
    seed(emulator, pods=4)
    out = await gather(diagnose.Pods, kube, limit=2)
    assert len(out.details["result"]["rows"]) == 2 and out.details["truncated"] is True


async def test_events_of_the_target_and_its_pods_newest_first(
    emulator: kube_emulator.KubeEmulator, kube: client.Kube
) -> None:
    made = seed(emulator)
    dep = emulator.read("Deployment", "production", "conea-api")
    stranger = emulator.read("Pod", "production", "conea-web-7d9f-x0")
    for e in (
        event("e1", dep, "ScalingReplicaSet", "Scaled up to 3", last="2026-11-28T11:00:00Z"),
        event(
            "e2",
            made[0],
            "BackOff",
            "Back-off restarting failed container api",
            last="2026-11-28T11:58:00Z",
            type_="Warning",
            count=7,
        ),
        event("e3", made[1], "Pulled", "Image pulled", last="2026-11-28T11:30:00Z"),
        event("e4", stranger, "Killing", "not ours", last="2026-11-28T11:59:00Z"),
    ):
        emulator.add(e)
    out = await gather(diagnose.Events, kube)
    rows = out.details["result"]["rows"]
    assert [(r[0], r[2], r[3], r[4]) for r in rows] == [
        ("2m", "BackOff", "pod/conea-api-7d9f-x0", 7),
        ("30m", "Pulled", "pod/conea-api-7d9f-x1", 1),
        ("1h", "ScalingReplicaSet", "deployment/conea-api", 1),
    ]
    assert out.summary == (
        "3 events for deployment production/conea-api and its pods, 1 warnings (newest: "
        "BackOff x7: Back-off restarting failed container api)"
    )
    limited = await gather(diagnose.Events, kube, limit=1)
    assert len(limited.details["result"]["rows"]) == 1 and limited.details["truncated"]


async def test_the_emulator_refuses_a_field_selector_the_api_does_not_index(
    emulator: kube_emulator.KubeEmulator, kube: client.Kube
) -> None:
    with pytest.raises(errors.PermanentActionError, match="not a known field selector"):
        await kube.list("Event", "production", field_selector="message=x")


async def test_logs_tail_each_pod_prefixed_and_redacted(
    emulator: kube_emulator.KubeEmulator, kube: client.Kube
) -> None:
    made = seed(emulator, pods=2)
    emulator.set_log(
        "production",
        made[0]["metadata"]["name"],
        [f"line {i}" for i in range(300)]
        + [
            "ERROR db: connect postgres://app:hunter2pass@db:5432/conea failed",
            "INFO env DB_PASSWORD=s3cr3t-value LOG_LEVEL=debug",
            "ERROR auth: Authorization: Bearer abcdefghijklmnop1234 rejected",
        ],
    )
    emulator.set_log("production", made[1]["metadata"]["name"], ["healthy"])
    out = await gather(diagnose.Logs, kube, tail=4)
    lines = out.details["result"]["lines"]
    assert lines == [
        "[conea-api-7d9f-x0] line 299",
        "[conea-api-7d9f-x0] ERROR db: connect postgres://app:<redacted>@db:5432/conea failed",
        "[conea-api-7d9f-x0] INFO env DB_PASSWORD=<redacted> LOG_LEVEL=debug",
        "[conea-api-7d9f-x0] ERROR auth: Authorization: Bearer <redacted> rejected",
        "[conea-api-7d9f-x1] healthy",
    ]
    assert out.summary == "5 log lines from 2 pods of deployment production/conea-api"

    errors_only = await gather(diagnose.Logs, kube, filter="^ERROR", tail=100, pods=1)
    assert [line.split(":")[0] for line in errors_only.details["result"]["lines"]] == [
        "[conea-api-7d9f-x0] ERROR db",
        "[conea-api-7d9f-x0] ERROR auth",
    ]
    assert errors_only.summary.endswith("matching '^ERROR'")


async def test_logs_of_the_previous_container_and_a_missing_one(
    emulator: kube_emulator.KubeEmulator, kube: client.Kube
) -> None:
    made = seed(emulator, pods=2)
    emulator.set_log("production", made[0]["metadata"]["name"], ["panic: boom"], previous=True)
    out = await gather(diagnose.Logs, kube, previous=True)
    assert out.details["result"]["lines"] == [
        "[conea-api-7d9f-x0] panic: boom",
        "[conea-api-7d9f-x1] (no log: get pods/log production/conea-api-7d9f-x1: API refused "
        'it (400): previous terminated container "api" in pod "conea-api-7d9f-x1" not found)',
    ]
    assert out.summary.startswith("1 previous log lines from 1 pods")
    with pytest.raises(errors.PermanentActionError, match="no log could be read"):
        await gather(diagnose.Logs, kube, previous=True, pods=1, container="nope")


async def test_the_emulator_asks_for_a_container_when_a_pod_has_several(
    emulator: kube_emulator.KubeEmulator, kube: client.Kube
) -> None:
    made = seed(emulator, pods=1)
    emulator.modify(
        "Pod",
        "production",
        made[0]["metadata"]["name"],
        lambda p: p["spec"]["containers"].append({"name": "sidecar", "image": "envoy"}),
    )
    with pytest.raises(errors.PermanentActionError, match=r"choose one of: \[api sidecar\]"):
        await kube.pod_log("production", made[0]["metadata"]["name"])
    emulator.set_log("production", made[0]["metadata"]["name"], ["a", "b", "c"])
    assert (
        await kube.pod_log("production", made[0]["metadata"]["name"], container="api", tail_lines=2)
        == "b\nc\n"
    )
    # the diagnostic names the pod's first container itself
    out = await gather(diagnose.Logs, kube)
    assert out.details["result"]["lines"] == [f"[{made[0]['metadata']['name']}] {x}" for x in "abc"]


async def test_a_log_line_and_the_whole_result_are_capped(
    emulator: kube_emulator.KubeEmulator, kube: client.Kube
) -> None:
    made = seed(emulator, pods=1)
    emulator.set_log("production", made[0]["metadata"]["name"], ["x" * 5000] * 2000)
    out = await gather(diagnose.Logs, kube, tail=2000)
    lines = out.details["result"]["lines"]
    assert out.details["truncated"] is True
    assert all(len(line) <= common.MAX_LINE for line in lines)
    assert sum(len(line) for line in lines) <= common.MAX_BYTES
    assert 0 < len(lines) < 2000


def test_the_parameters_are_bounded() -> None:
    with pytest.raises(ValueError, match="less than or equal to 2000"):
        diagnose.LogsParams.model_validate({"tail": 2001})
    with pytest.raises(ValueError, match="less than or equal to 5"):
        diagnose.LogsParams.model_validate({"pods": 6})
    with pytest.raises(ValueError, match="invalid regular expression"):
        diagnose.LogsParams.model_validate({"filter": "(unclosed"})
    with pytest.raises(ValueError, match="less than or equal to 200"):
        diagnose.EventsParams.model_validate({"limit": 201})
