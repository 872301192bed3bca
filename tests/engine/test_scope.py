"""Namespace scope: the guardrail and the Kubernetes client apply the same patterns."""

from __future__ import annotations

from pathlib import Path

from tests.engine.conftest import alert, harness, wait_for
from tests.support import kube_thread
from tests.support.kube_objects import deployment

POLICIES = """
policies:
  - name: restart
    match: ['alertname="ApiDown"']
    target: {kind: Deployment, namespace: "{{ labels.namespace }}",
             name: "{{ labels.deployment }}"}
    steps: [[{action: kubernetes.restart}]]
    cooldown: 0s
"""

RESTARTED = "kubectl.kubernetes.io/restartedAt"


def restarted(emu: kube_thread.ThreadedEmulator, namespace: str) -> bool:
    obj = emu.read("Deployment", namespace, "conea-api")
    return RESTARTED in (obj["spec"]["template"]["metadata"].get("annotations") or {})


def scope_audit(h: object, fingerprint: str) -> list[tuple[str, str | None, str]]:
    from tests.engine.conftest import Harness

    assert isinstance(h, Harness)
    found = wait_for(lambda: h.audit(fingerprint=fingerprint), 10, f"audit of {fingerprint}")
    return [(a["kind"], a["outcome"], a["message"]) for a in found]


def test_a_pattern_in_the_allow_list_is_honoured_by_the_guardrail_and_the_api_call(
    tmp_path: Path, emu: kube_thread.ThreadedEmulator
) -> None:
    for namespace in ("team-a", "other"):
        emu.add(deployment(namespace=namespace))
    with harness(
        tmp_path, POLICIES, emulator=emu, automation={"namespaces_allow": ["team-*"]}
    ) as h:
        # team-a matches team-*: acted on, and the write reaches the cluster.
        h.post(alert("ApiDown", "5c01", namespace="team-a"))
        h.wait_execution("5c01", "succeeded")
        assert restarted(emu, "team-a")

        # other does not: skipped as out of scope, with the reason, and left alone.
        h.post(alert("ApiDown", "5c02", namespace="other"))
        assert scope_audit(h, "5c02") == [
            (
                "skip",
                "scope",
                "'restart': scope: namespace 'other' is not in the allow list (team-*)",
            )
        ]
        assert not restarted(emu, "other")


def test_every_kube_namespace_is_out_of_scope_by_default_and_exact_names_still_work(
    tmp_path: Path, emu: kube_thread.ThreadedEmulator
) -> None:
    for namespace in ("kube-flannel", "staging"):
        emu.add(deployment(namespace=namespace))
    with harness(tmp_path, POLICIES, emulator=emu) as h:  # the default scope
        h.post(alert("ApiDown", "5d01", namespace="kube-flannel"))
        assert scope_audit(h, "5d01") == [
            (
                "skip",
                "scope",
                "'restart': scope: namespace 'kube-flannel' is in the deny list (pattern 'kube-*')",
            )
        ]
        assert not restarted(emu, "kube-flannel")

    (tmp_path / "exact").mkdir()
    with harness(
        tmp_path / "exact",
        POLICIES,
        emulator=emu,
        automation={"namespaces_allow": ["staging"], "namespaces_deny": ["production"]},
    ) as h:
        h.post(alert("ApiDown", "5d02", namespace="staging"))
        h.wait_execution("5d02", "succeeded")
        assert restarted(emu, "staging")
        h.post(alert("ApiDown", "5d03", namespace="production"))
        assert scope_audit(h, "5d03") == [
            ("skip", "scope", "'restart': scope: namespace 'production' is in the deny list")
        ]
        assert not restarted(emu, "production")
