"""The client wrapper: one request per call, errors mapped, targets validated."""

from __future__ import annotations

import pytest

from monitor import errors
from monitor import scope as scope_mod
from monitor.k8s import client, names
from monitor.k8s import errors as k8s_errors
from tests.support.kube_objects import deployment


async def test_reads_through_the_official_client_as_dicts(emulator, kube):
    emulator.add(deployment(replicas=3))
    obj = await kube.read("Deployment", "production", "conea-api")
    assert obj["spec"]["replicas"] == 3 and obj["metadata"]["resourceVersion"]
    assert list(emulator)[-1].headers["User-Agent"].startswith("OpenAPI-Generator")


async def test_404_is_permanent_and_names_the_object(kube):
    with pytest.raises(
        errors.PermanentActionError,
        match=r"get deployments.apps "
        r"production/ghost: not found",
    ):
        await kube.read("Deployment", "production", "ghost")


async def test_403_says_which_verb_on_which_resource(emulator, kube):
    emulator.add(deployment())
    emulator.fail(
        403,
        method="PUT",
        plural="deployments",
        message=(
            'deployments.apps "conea-api" is forbidden: User "system:serviceaccount:monitoring:'
            'conea-monitor" cannot update resource "deployments/scale"'
        ),
    )
    scale = await kube.read_scale("Deployment", "production", "conea-api")
    with pytest.raises(k8s_errors.ForbiddenError) as caught:
        await kube.replace_scale("Deployment", "production", "conea-api", scale)
    message = str(caught.value)
    assert "may not 'update' resource 'deployments.apps/scale' in namespace 'production'" in (
        message
    )
    assert "conea-monitor rbac" in message and "system:serviceaccount" in message
    assert isinstance(caught.value, errors.PermanentActionError)


def requests(emulator, method="GET"):
    return [r for r in emulator if r.method.value == method and r.resource is not None]


@pytest.mark.parametrize("status", [500, 503])
async def test_a_5xx_is_one_request_and_a_temporary_error(emulator, kube, status):
    emulator.add(deployment())
    emulator.fail(status, method="GET", times=10)
    with pytest.raises(errors.TemporaryActionError, match=f"API answered {status}") as caught:
        await kube.read("Deployment", "production", "conea-api")
    assert len(requests(emulator)) == 1  # nothing below the runner retries
    assert caught.value.delay == client.RETRY_DELAY
    assert "get deployments.apps production/conea-api" in str(caught.value)


async def test_a_429_is_one_request_and_carries_its_retry_after(emulator, kube):
    emulator.add(deployment())
    emulator.fail(429, method="GET", retry_after=7, times=10)
    with pytest.raises(errors.TemporaryActionError, match="API answered 429") as caught:
        await kube.read("Deployment", "production", "conea-api")
    assert len(requests(emulator)) == 1
    assert caught.value.delay == 7


async def test_a_timeout_is_one_request_and_temporary(emulator, kube):
    emulator.add(deployment())
    emulator.stall(0.6, method="GET")  # the client's read timeout is 0.3 s
    with pytest.raises(errors.TemporaryActionError, match="Timeout"):
        await kube.read("Deployment", "production", "conea-api")
    assert len(requests(emulator)) == 1


async def test_conflicts_are_not_retried_by_the_client(emulator, kube):
    emulator.add(deployment())
    scale = await kube.read_scale("Deployment", "production", "conea-api")
    emulator.modify("Deployment", "production", "conea-api", lambda o: None)
    with pytest.raises(k8s_errors.ConflictError):
        await kube.replace_scale("Deployment", "production", "conea-api", scale)
    assert len(requests(emulator, "PUT")) == 1


async def test_unreachable_server_is_temporary():
    kube = client.for_host("http://127.0.0.1:9", timeout=(0.2, 0.2))
    try:
        with pytest.raises(errors.TemporaryActionError):
            await kube.read("Deployment", "production", "x")
    finally:
        kube.close()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"kind": "Deployment", "namespace": "kube-system", "name": "coredns"},
            "namespace 'kube-system' is in the deny list",
        ),
        (
            {"kind": "Deployment", "namespace": "payments", "name": "api"},
            "namespace 'payments' is not in the allow list",
        ),
        (
            {"kind": "Deployment", "namespace": "production/../kube-system", "name": "api"},
            "not a valid DNS-1123 label",
        ),
        (
            {"kind": "Deployment", "namespace": "production", "name": "../../namespaces/x"},
            "Deployment name '../../namespaces/x' is not a valid DNS-1123 subdomain",
        ),
        (
            {"kind": "Deployment", "namespace": "production", "name": "Conea_API"},
            "not a valid DNS-1123 subdomain",
        ),
        (
            {"kind": "Deployment", "namespace": "production", "name": "a" * 254},
            "not a valid DNS-1123 subdomain",
        ),
        (
            {"kind": "Secret", "namespace": "production", "name": "api"},
            "kind 'Secret' is not supported here",
        ),
        ({"kind": "Deployment", "name": "api"}, "names no namespace"),
    ],
)
def test_untrusted_targets_are_refused(raw, message):
    scope = scope_mod.Scope.of(["production", "staging", "kube-system"])
    with pytest.raises(names.InvalidTargetError, match=message.replace(".", r"\.")):
        names.target(raw, scope, ("Deployment", "StatefulSet"))


def test_valid_target_is_normalised():
    t = names.target(
        {"kind": "deploy", "namespace": "production", "name": "conea-api"},
        scope_mod.Scope.of(None),
        ("Deployment",),
    )
    assert (t.kind, t.namespace, t.name, str(t)) == (
        "Deployment",
        "production",
        "conea-api",
        "deployment production/conea-api",
    )


def test_from_settings_without_credentials_is_none(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert client.from_settings(None, None, in_cluster=False) is None


def test_from_settings_with_a_missing_kubeconfig_names_it(tmp_path):
    path = str(tmp_path / "nope.yaml")
    with pytest.raises(errors.ConfigError, match=r"nope\.yaml"):
        client.from_settings(path, None, in_cluster=False)


def test_from_settings_reads_kubeconfig_and_context(tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text("""
apiVersion: v1
kind: Config
clusters:
- name: a
  cluster: {server: "https://a.example:6443"}
- name: b
  cluster: {server: "https://b.example:6443"}
users:
- name: u
  user: {token: secret-token}
contexts:
- name: ctx-a
  context: {cluster: a, user: u}
- name: ctx-b
  context: {cluster: b, user: u}
current-context: ctx-a
""")
    kube = client.from_settings(
        str(path), "ctx-b", in_cluster=False, scope=scope_mod.Scope.of(["production"])
    )
    assert kube is not None
    try:
        assert kube.host == "https://b.example:6443"
        assert kube.scope.allow == ("production",)
    finally:
        kube.close()
    with pytest.raises(errors.ConfigError, match="ctx-z"):
        client.from_settings(str(path), "ctx-z", in_cluster=False)


def test_in_cluster_without_a_service_account_is_a_config_error(monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(errors.ConfigError, match="in-cluster"):
        client.from_settings(None, None, in_cluster=True)
