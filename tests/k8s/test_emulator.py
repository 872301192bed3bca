"""The emulator behaves like a kube-apiserver where the actions depend on it."""

from __future__ import annotations

import aiohttp
import pytest

from tests.support import kube_emulator
from tests.support.kube_objects import deployment, hpa, workload


async def request(
    emulator: kube_emulator.KubeEmulator,
    method: str,
    path: str,
    body: object = None,
    content_type: str = "application/json",
) -> tuple[int, dict]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method,
            f"{str(emulator.url).rstrip('/')}{path}",
            json=body,
            headers={"Content-Type": content_type},
        ) as response,
    ):
        return response.status, await response.json()


DEPLOY = "/apis/apps/v1/namespaces/production/deployments/conea-api"


async def test_objects_get_uid_resource_version_and_generation(emulator):
    emulator.add(deployment())
    status, obj = await request(emulator, "GET", DEPLOY)
    assert status == 200
    assert obj["metadata"]["uid"] and obj["metadata"]["generation"] == 1
    first = obj["metadata"]["resourceVersion"]
    obj["spec"]["replicas"] = 7
    status, obj = await request(emulator, "PUT", DEPLOY, obj)
    assert status == 200
    assert obj["metadata"]["resourceVersion"] != first
    assert obj["metadata"]["generation"] == 2


async def test_put_with_stale_resource_version_is_a_409(emulator):
    emulator.add(deployment())
    _, obj = await request(emulator, "GET", DEPLOY)
    emulator.modify("Deployment", "production", "conea-api", lambda o: o["spec"].update(replicas=9))
    obj["spec"]["replicas"] = 5
    status, body = await request(emulator, "PUT", DEPLOY, obj)
    assert status == 409 and body["reason"] == "Conflict"
    assert emulator.read("Deployment", "production", "conea-api")["spec"]["replicas"] == 9


async def test_patch_carrying_a_stale_resource_version_is_a_409(emulator):
    emulator.add(deployment())
    patch = {"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 2}}
    status, _ = await request(emulator, "PATCH", DEPLOY, patch, "application/merge-patch+json")
    assert status == 409


async def test_scale_subresource_is_a_scale_object(emulator):
    emulator.add(deployment(replicas=3))
    status, scale = await request(emulator, "GET", DEPLOY + "/scale")
    assert status == 200
    assert scale["kind"] == "Scale" and scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"]["replicas"] == 3 and scale["status"]["selector"] == "app=conea-api"
    scale["spec"]["replicas"] = 5
    status, scale = await request(emulator, "PUT", DEPLOY + "/scale", scale)
    assert status == 200 and scale["spec"]["replicas"] == 5
    assert emulator.read("Deployment", "production", "conea-api")["spec"]["replicas"] == 5


async def test_strategic_merge_merges_lists_by_name(emulator):
    emulator.add(deployment())
    patch = {
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "api", "env": [{"name": "RATE", "value": "100"}]}]}
            }
        }
    }
    status, obj = await request(
        emulator, "PATCH", DEPLOY, patch, "application/strategic-merge-patch+json"
    )
    assert status == 200
    api, sidecar = obj["spec"]["template"]["spec"]["containers"]
    assert (api["name"], api["image"], sidecar["name"]) == ("api", "conea/api:1.2.0", "sidecar")
    assert api["env"] == [{"name": "LOG_LEVEL", "value": "info"}, {"name": "RATE", "value": "100"}]


async def test_merge_patch_replaces_lists(emulator):
    emulator.add(deployment())
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "only", "image": "x"}]}}}}
    _, obj = await request(emulator, "PATCH", DEPLOY, patch, "application/merge-patch+json")
    assert obj["spec"]["template"]["spec"]["containers"] == [{"name": "only", "image": "x"}]


async def test_json_patch(emulator):
    emulator.add(deployment())
    ops = [
        {"op": "replace", "path": "/spec/replicas", "value": 1},
        {"op": "add", "path": "/metadata/labels/tier", "value": "web"},
        {"op": "remove", "path": "/spec/template/spec/containers/1"},
    ]
    status, obj = await request(emulator, "PATCH", DEPLOY, ops, "application/json-patch+json")
    assert status == 200
    assert obj["spec"]["replicas"] == 1 and obj["metadata"]["labels"]["tier"] == "web"
    assert len(obj["spec"]["template"]["spec"]["containers"]) == 1
    failing = [{"op": "test", "path": "/spec/replicas", "value": 99}]
    status, _ = await request(emulator, "PATCH", DEPLOY, failing, "application/json-patch+json")
    assert status == 422


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("", ["a", "b", "c"]),
        ("app=web", ["a", "b"]),
        ("app==web,tier!=db", ["a"]),
        ("tier in (db, cache)", ["b"]),
        ("tier notin (db)", ["a", "c"]),
        ("tier", ["a", "b"]),
        ("!tier", ["c"]),
    ],
)
async def test_list_filters_by_label_selector(emulator, selector, expected):
    for name, labels in (
        ("a", {"app": "web", "tier": "front"}),
        ("b", {"app": "web", "tier": "db"}),
        ("c", {"app": "batch"}),
    ):
        emulator.add(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": "production", "labels": labels},
                "spec": {"containers": [{"name": "x", "image": "x"}]},
            }
        )
    emulator.add(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "elsewhere", "namespace": "staging", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "x", "image": "x"}]},
        }
    )
    status, body = await request(
        emulator,
        "GET",
        "/api/v1/namespaces/production/pods?labelSelector=" + selector.replace(" ", "%20"),
    )
    assert status == 200
    assert sorted(item["metadata"]["name"] for item in body["items"]) == expected


async def test_injected_failures_are_served_then_cleared(emulator):
    emulator.add(deployment())
    emulator.fail(403, method="GET", plural="deployments", times=2, message="no")
    assert (await request(emulator, "GET", DEPLOY))[0] == 403
    assert (await request(emulator, "GET", DEPLOY))[0] == 403
    assert (await request(emulator, "GET", DEPLOY))[0] == 200


async def test_missing_object_is_a_404_and_delete_removes(emulator):
    assert (await request(emulator, "GET", DEPLOY))[0] == 404
    emulator.add(deployment())
    assert (await request(emulator, "DELETE", DEPLOY))[0] == 200
    assert (await request(emulator, "GET", DEPLOY))[0] == 404


async def test_race_runs_before_the_next_write(emulator):
    emulator.add(deployment())
    _, obj = await request(emulator, "GET", DEPLOY)
    emulator.race(
        lambda e: e.modify(
            "Deployment", "production", "conea-api", lambda o: o["spec"].update(replicas=8)
        )
    )
    obj["spec"]["replicas"] = 5
    assert (await request(emulator, "PUT", DEPLOY, obj))[0] == 409
    assert emulator.read("Deployment", "production", "conea-api")["spec"]["replicas"] == 8


HPA = "/apis/autoscaling/v2/namespaces/production/horizontalpodautoscalers/conea-api"


async def test_hpas_are_served_and_a_max_below_their_min_is_a_422(emulator):
    emulator.add(hpa(min_replicas=4, max_replicas=10))
    status, body = await request(emulator, "GET", HPA)
    assert status == 200 and body["spec"]["maxReplicas"] == 10
    status, body = await request(
        emulator, "GET", "/apis/autoscaling/v2/namespaces/production/horizontalpodautoscalers"
    )
    assert [item["metadata"]["name"] for item in body["items"]] == ["conea-api"]
    lower = [{"op": "replace", "path": "/spec/maxReplicas", "value": 3}]
    status, body = await request(emulator, "PATCH", HPA, lower, "application/json-patch+json")
    assert status == 422 and body["message"] == (
        'HorizontalPodAutoscaler.autoscaling "conea-api" is invalid: spec.maxReplicas: '
        "Invalid value: 3: must be greater than or equal to `minReplicas`"
    )
    raise_ = [{"op": "replace", "path": "/spec/maxReplicas", "value": 12}]
    status, body = await request(emulator, "PATCH", HPA, raise_, "application/json-patch+json")
    assert status == 200 and body["spec"]["maxReplicas"] == 12


async def test_daemonsets_are_served_and_patched(emulator):
    emulator.add(workload("DaemonSet", "node-agent"))
    path = "/apis/apps/v1/namespaces/production/daemonsets/node-agent"
    patch = {"spec": {"template": {"metadata": {"annotations": {"a": "b"}}}}}
    status, body = await request(
        emulator, "PATCH", path, patch, "application/strategic-merge-patch+json"
    )
    assert status == 200 and body["spec"]["template"]["metadata"]["annotations"] == {"a": "b"}
    assert body["metadata"]["generation"] == 2
