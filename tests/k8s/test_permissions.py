"""The permission check as a user meets it: /readyz, `check --cluster`, and a skipped
policy, against the emulator answering SelfSubjectAccessReview from a Role."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from monitor.actions import default_registry, rbac
from tests.engine.conftest import alert, notification, wait_for
from tests.support import kube_thread
from tests.support import service as svc
from tests.support.kube_objects import deployment

ROOT = Path(__file__).resolve().parent.parent.parent

POLICY = """
policies:
  - name: rate-limit
    match: ['alertname="HighLoad"']
    target: {kind: Deployment, namespace: "{{ labels.namespace }}",
             name: "{{ labels.deployment }}"}
    steps: [[{action: kubernetes.set_env, with: {env: {RATE_LIMIT_PER_MINUTE: "100"}}}]]
"""

MISSING = [  # a Deployment target: asked for deployments only, not every workload kind
    "policy 'rate-limit' needs patch deployments.apps in production: denied",
]


def _role(without_verb: str | None = None) -> dict[str, Any]:
    [role] = rbac.render(default_registry(), ["kubernetes.set_env"], ["production"], "conea")
    for rule in role["rules"]:
        rule["verbs"] = [v for v in rule["verbs"] if v != without_verb]
    return role


def _config(tmp_path: Path, emu: kube_thread.ThreadedEmulator) -> Path:
    folder = tmp_path / "remediations"
    folder.mkdir()
    (folder / "p.yaml").write_text(POLICY)
    return svc.write_config(
        tmp_path,
        policies=[str(folder)],
        kubernetes={"mode": "kubeconfig", "kubeconfig": str(emu.kubeconfig(tmp_path))},
        automation={"dry_run": False, "namespaces_allow": ["production"]},
    )


def _check_cluster(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", "check", "--cluster", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_check_cluster_passes_when_the_role_grants_what_the_policies_need(
    tmp_path: Path,
) -> None:
    with kube_thread.emulator() as emu:
        emu.call(lambda h: h.grant(_role()))
        result = _check_cluster(_config(tmp_path, emu))
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[-1] == (
            "SUCCESS: the cluster grants all 2 permissions the policies need"
        )


def test_check_cluster_names_each_missing_permission_per_policy(tmp_path: Path) -> None:
    with kube_thread.emulator() as emu:
        emu.call(lambda h: h.grant(_role(without_verb="patch")))
        result = _check_cluster(_config(tmp_path, emu))
        assert result.returncode == 1
        assert result.stdout.splitlines()[1:] == [
            *MISSING,
            "FAILED: 1 of the policies' permissions not granted",
        ]


def test_a_denied_permission_is_reported_by_readyz_and_skips_the_policy_untried(
    tmp_path: Path,
) -> None:
    with kube_thread.emulator() as emu:
        emu.add(deployment())
        emu.call(lambda h: h.grant(_role(without_verb="patch")))
        before = emu.read("Deployment", "production", "conea-api")
        with svc.running(_config(tmp_path, emu)) as service:
            wait_for(lambda: "permissions" in service.get("/readyz").json(), 10, "permission check")
            ready = service.get("/readyz")
            assert ready.status_code == 200
            assert ready.json() == {"status": "ready", "permissions": MISSING}

            service.post(notification(alert("HighLoad", "pe01")))
            wait_for(
                lambda: service.get("/api/v1/audit", params={"fingerprint": "pe01"}).json()[
                    "items"
                ],
                10,
                "skip record",
            )
            [skip] = service.get("/api/v1/audit", params={"fingerprint": "pe01"}).json()["items"]
            assert skip["outcome"] == "permission"
            assert "needs patch deployments.apps in production: denied" in skip["message"]
            assert emu.read("Deployment", "production", "conea-api") == before
            assert "RATE_LIMIT_PER_MINUTE" not in json.dumps(before)

            # The Role fixed, a reload checks again: nothing is missing any more.
            emu.call(lambda h: h.grant(_role()))
            assert service.admin("/-/reload").status_code == 200
            wait_for(lambda: "permissions" not in service.get("/readyz").json(), 10, "a new check")
            assert service.get("/readyz").json() == {"status": "ready"}
