"""How the workload runs: store, replicas, secrets, security, reloads, network."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest

from tests.helm import conftest as c


def _deployment(chart: helm.Chart, values: dict[str, Any] | None = None) -> dict[str, Any]:
    return c.one(c.render(chart, values), "Deployment")


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def _mounts(deployment: dict[str, Any]) -> dict[str, str]:
    return {m["mountPath"]: m["name"] for m in _container(deployment)["volumeMounts"]}


def _volumes(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}


def test_defaults_run_one_replica_on_sqlite_on_a_claim(chart: helm.Chart) -> None:
    objects = c.render(chart)
    deployment = c.one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    # Two pods must never open the same SQLite file: stop, then start.
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    claim = c.one(objects, "PersistentVolumeClaim")
    assert (
        _volumes(deployment)["data"]["persistentVolumeClaim"]["claimName"]
        == (claim["metadata"]["name"])
    )
    assert _mounts(deployment)["/var/lib/conea-monitor"] == "data"
    assert c.service_config(objects)["data_dir"] == "/var/lib/conea-monitor"
    assert c.by_kind(objects, "PodDisruptionBudget") == []
    assert "env" not in _container(deployment)


def test_several_replicas_use_postgresql_from_a_secret_and_a_disruption_budget(
    chart: helm.Chart,
) -> None:
    objects = c.render(chart, c.VALUE_SETS["ha-postgres"])
    deployment = c.one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    env = {e["name"]: e for e in _container(deployment)["env"]}
    assert env["CONEA_MONITOR_STORE__URL"]["valueFrom"] == {
        "secretKeyRef": {"name": "conea-monitor-db", "key": "url"}
    }
    assert "url" not in c.service_config(objects).get("store", {})
    assert c.by_kind(objects, "PersistentVolumeClaim") == []
    assert "emptyDir" in _volumes(deployment)["data"]
    budget = c.one(objects, "PodDisruptionBudget")
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"].items() <= (
        deployment["spec"]["template"]["metadata"]["labels"].items()
    )


def test_no_lease_is_granted_the_job_leader_is_a_postgresql_advisory_lock(
    chart: helm.Chart,
) -> None:
    objects = c.render(chart, c.VALUE_SETS["ha-postgres"])
    for role in c.by_kind(objects, "Role") + c.by_kind(objects, "ClusterRole"):
        for rule in role["rules"]:
            assert "coordination.k8s.io" not in rule["apiGroups"]


def test_notification_and_target_secrets_arrive_by_reference(chart: helm.Chart) -> None:
    deployment = _deployment(chart, c.VALUE_SETS["ha-postgres"])
    env = {e["name"]: e for e in _container(deployment)["env"]}
    assert env["SLACK_WEBHOOK_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "conea-slack",
        "key": "url",
    }
    mount = _mounts(deployment)["/var/run/secrets/conea-pg"]
    assert _volumes(deployment)[mount]["secret"]["secretName"] == "conea-pg"


def test_the_webhook_token_file_is_where_the_config_says(chart: helm.Chart) -> None:
    objects = c.render(chart, c.VALUE_SETS["ha-postgres"])
    path = c.service_config(objects)["webhook"]["bearer_token_file"]
    deployment = c.one(objects, "Deployment")
    directory, _, key = path.rpartition("/")
    volume = _volumes(deployment)[_mounts(deployment)[directory]]
    assert volume["secret"]["secretName"] == "conea-monitor-webhook"
    assert volume["secret"]["items"] == [{"key": "token", "path": key}]


def test_the_operator_token_comes_from_its_own_secret(chart: helm.Chart) -> None:
    objects = c.render(chart, c.VALUE_SETS["ha-postgres"])
    config = c.service_config(objects)
    path = config["automation"]["api_token_file"]
    assert path != config["webhook"]["bearer_token_file"]  # a credential of its own
    deployment = c.one(objects, "Deployment")
    directory, _, key = path.rpartition("/")
    volume = _volumes(deployment)[_mounts(deployment)[directory]]
    assert volume["secret"] == {
        "secretName": "conea-monitor-operator",
        "defaultMode": 0o440,
        "items": [{"key": "token", "path": key}],
    }


def test_without_an_operator_secret_each_pod_generates_its_token(chart: helm.Chart) -> None:
    objects = c.render(chart, {})
    assert "api_token_file" not in c.service_config(objects)["automation"]
    notes = c.render_files(chart, {})["conea-monitor/templates/NOTES.txt"]
    assert "exec deploy/conea-conea-monitor -- cat /var/lib/conea-monitor/admin-token" in notes
    assert 'curl -s -X POST -H "Authorization: Bearer $TOKEN"' in notes


def test_basic_auth_password_file_is_mounted(chart: helm.Chart) -> None:
    objects = c.render(chart, c.VALUE_SETS["network-policy"])
    basic = c.service_config(objects)["webhook"]["basic_auth"]
    assert basic["username"] == "alertmanager"
    deployment = c.one(objects, "Deployment")
    directory, _, key = basic["password_file"].rpartition("/")
    volume = _volumes(deployment)[_mounts(deployment)[directory]]
    assert volume["secret"] == {
        "secretName": "conea-monitor-basic",
        "defaultMode": 0o440,
        "items": [{"key": "password", "path": key}],
    }


def test_the_pod_runs_non_root_on_a_read_only_root_file_system(chart: helm.Chart) -> None:
    deployment = _deployment(chart)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    container = _container(deployment)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    # The writable places: the data volume and /tmp.
    writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    assert writable == {"/var/lib/conea-monitor", "/tmp"}


def test_probes_and_command_match_the_service(chart: helm.Chart) -> None:
    container = _container(_deployment(chart, {"image": {"tag": "1.2.3"}}))
    assert container["image"] == "ghcr.io/conea/conea-monitor:1.2.3"
    assert container["args"][:3] == [
        "serve",
        "--config",
        "/etc/conea-monitor/config/conea-monitor.yml",
    ]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 9115, "protocol": "TCP"}]
    digest = "sha256:" + "a" * 64
    pinned = _container(_deployment(chart, {"image": {"tag": "1.2.3", "digest": digest}}))
    assert pinned["image"] == f"ghcr.io/conea/conea-monitor@{digest}"


def _annotations(chart: helm.Chart, values: dict[str, Any]) -> dict[str, str]:
    annotations: dict[str, str] = _deployment(chart, values)["spec"]["template"]["metadata"][
        "annotations"
    ]
    return annotations


def test_a_config_change_rolls_the_pods_and_an_unrelated_one_does_not(chart: helm.Chart) -> None:
    base = _annotations(chart, {})
    assert _annotations(chart, {}) == base
    debug = _annotations(chart, {"config": {"log": {"level": "DEBUG"}}})
    assert debug["checksum/config"] != base["checksum/config"]
    assert debug["checksum/policies"] == base["checksum/policies"]
    modules = _annotations(chart, {"probeModules": {"modules": {"x": {"prober": "tcp"}}}})
    assert modules["checksum/config"] != base["checksum/config"]
    policy = _annotations(chart, {"policies": {"files": {"extra.yaml": "policies: []\n"}}})
    assert policy["checksum/policies"] != base["checksum/policies"]
    assert _annotations(chart, {"resources": {}})["checksum/config"] == base["checksum/config"]


def test_policies_reloaded_in_place_do_not_roll_the_pods(chart: helm.Chart) -> None:
    values: dict[str, Any] = {"policies": {"reloadInPlace": True}}
    annotations = _annotations(chart, values)
    assert "checksum/policies" not in annotations
    deployment = _deployment(chart, values)
    # Mounted as a directory (no subPath), so the kubelet updates the files in place.
    mounts = _container(deployment)["volumeMounts"]
    policies = [m for m in mounts if m["name"] == "policies"]
    assert policies == [
        {"name": "policies", "mountPath": "/etc/conea-monitor/policies", "readOnly": True}
    ]
    notes = c.render_files(chart, values)["conea-monitor/templates/NOTES.txt"]
    assert "kill -HUP 1" in notes


def test_network_policy_opens_the_port_to_alertmanager_and_prometheus_only(
    chart: helm.Chart,
) -> None:
    objects = c.render(chart, c.VALUE_SETS["network-policy"])
    policy = c.one(objects, "NetworkPolicy")
    deployment = c.one(objects, "Deployment")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= (
        deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    pods = [peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for peer in rule["from"]]
    assert pods == ["alertmanager", "prometheus"]
    assert c.by_kind(c.render(chart), "NetworkPolicy") == []


def test_probe_resources_send_prometheus_through_the_service(chart: helm.Chart) -> None:
    objects = c.render(chart, c.VALUE_SETS["namespaces-and-probes"])
    probe = c.one(objects, "Probe")
    service = c.one(objects, "Service")
    host, _, port = probe["spec"]["prober"]["url"].partition(":")
    assert host == f"{service['metadata']['name']}.{c.NAMESPACE}.svc"
    assert int(port) == service["spec"]["ports"][0]["port"]
    assert probe["spec"]["module"] == "http_2xx"
    assert probe["spec"]["targets"]["staticConfig"] == {
        "static": ["https://api.conea.io/health"],
        "labels": {"service": "conea-api"},
    }
    assert c.by_kind(c.render(chart), "Probe") == []


def test_the_claim_follows_the_persistence_values(chart: helm.Chart) -> None:
    def claim(values: dict[str, Any]) -> dict[str, Any]:
        return c.one(c.render(chart, {"persistence": values}), "PersistentVolumeClaim")

    assert "storageClassName" not in claim({})["spec"]
    assert claim({"storageClass": "-"})["spec"]["storageClassName"] == ""
    fast = claim({"storageClass": "fast", "size": "5Gi"})["spec"]
    assert fast["storageClassName"] == "fast"
    assert fast["resources"]["requests"]["storage"] == "5Gi"
    mine = c.render(chart, {"persistence": {"existingClaim": "conea-data"}})
    assert c.by_kind(mine, "PersistentVolumeClaim") == []
    volume = _volumes(c.one(mine, "Deployment"))["data"]
    assert volume == {"name": "data", "persistentVolumeClaim": {"claimName": "conea-data"}}


def test_icmp_permission_sets_the_ping_sysctl_by_default(chart: helm.Chart) -> None:
    pod = _deployment(chart)["spec"]["template"]["spec"]
    assert pod["securityContext"]["sysctls"] == [
        {"name": "net.ipv4.ping_group_range", "value": "0 2147483647"}
    ]
    assert _container(_deployment(chart))["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_icmp_permission_net_raw_adds_the_capability_instead(chart: helm.Chart) -> None:
    deployment = _deployment(chart, {"icmpPermission": "netRaw"})
    assert "sysctls" not in deployment["spec"]["template"]["spec"]["securityContext"]
    capabilities = _container(deployment)["securityContext"]["capabilities"]
    assert capabilities == {"drop": ["ALL"], "add": ["NET_RAW"]}


def test_icmp_permission_none_grants_neither(chart: helm.Chart) -> None:
    deployment = _deployment(chart, {"icmpPermission": "none"})
    assert "sysctls" not in deployment["spec"]["template"]["spec"]["securityContext"]
    assert _container(deployment)["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_the_chart_installs_in_rehearsal_and_going_live_is_explicit(chart: helm.Chart) -> None:
    objects = c.render(chart, {})
    assert c.service_config(objects)["automation"]["mode"] == "rehearsal"
    notes = c.render_files(chart, {})["conea-monitor/templates/NOTES.txt"]
    assert "MODE: REHEARSAL" in notes and "--set config.automation.mode=live" in notes
    live = {"config": {"automation": {"mode": "live"}}}
    assert c.service_config(c.render(chart, live))["automation"]["mode"] == "live"
    assert "MODE: LIVE" in c.render_files(chart, live)["conea-monitor/templates/NOTES.txt"]
    asked = {"config": {"automation": {"mode": "approval", "approval": {"timeout": "15m"}}}}
    assert c.service_config(c.render(chart, asked))["automation"]["approval"] == {"timeout": "15m"}
    notes = c.render_files(chart, asked)["conea-monitor/templates/NOTES.txt"]
    assert "MODE: APPROVAL" in notes and "(NOT SET" in notes


def test_a_mode_the_service_does_not_know_is_refused_at_install(chart: helm.Chart) -> None:
    with pytest.raises(helm.HelmValuesError, match="at '/config/automation/mode'"):
        c.render(chart, {"config": {"automation": {"mode": "yolo"}}})


def test_the_viewer_token_comes_from_its_own_secret(chart: helm.Chart) -> None:
    values = {
        **c.VALUE_SETS["ha-postgres"],
        "viewerToken": {"existingSecret": "conea-monitor-viewer", "key": "read"},
    }
    objects = c.render(chart, values)
    config = c.service_config(objects)
    path = config["access"]["viewer_token_file"]
    assert path not in (
        config["automation"]["api_token_file"],
        config["webhook"]["bearer_token_file"],
    )
    deployment = c.one(objects, "Deployment")
    directory, _, key = path.rpartition("/")
    volume = _volumes(deployment)[_mounts(deployment)[directory]]
    assert volume["secret"] == {
        "secretName": "conea-monitor-viewer",
        "defaultMode": 0o440,
        "items": [{"key": "read", "path": key}],
    }
    notes = c.render_files(chart, values)["conea-monitor/templates/NOTES.txt"]
    assert "get secret conea-monitor-viewer -o jsonpath='{.data.read}'" in notes


def test_without_a_viewer_secret_reading_is_not_configured(chart: helm.Chart) -> None:
    assert "access" not in c.service_config(c.render(chart, {}))
