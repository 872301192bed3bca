"""kube-prometheus-stack's KubePodCrashLooping, end to end, on real Prometheus and Alertmanager.

A kube-state-metrics stand-in serves ``kube_pod_container_status_restarts_total`` with
namespace/pod/container labels -> Prometheus evaluates a rule in the shape of
kube-prometheus-stack's KubePodCrashLooping (written here, durations of seconds) ->
Alertmanager posts the alert, which names the pod and not the Deployment -> the bundled
``kps-crash-looping`` policy resolves the pod through its ReplicaSet to its Deployment in
the emulator and restarts that; the second crashing pod's alert finds it just restarted and
leaves it alone -> verification through Prometheus once the restarts stop.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from demo import receiver as receiver_mod
from demo import shorten
from tests.engine.conftest import wait_for
from tests.support import kube_objects, kube_thread, services
from tests.support import service as svc

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "e2e-kps-token"  # a throwaway credential for local programs
POD, OTHER = "conea-api-7d9f-x0", "conea-api-7d9f-x1"
RESTARTED = "kubectl.kubernetes.io/restartedAt"
KPS = "kube-prometheus-stack.yaml"

# The shape of kube-prometheus-stack's rule (kubernetes-apps group), its 10m window and
# 15m `for` shortened to seconds.
RULES = {
    "groups": [
        {
            "name": "kubernetes-apps",
            "rules": [
                {
                    "alert": "KubePodCrashLooping",
                    "expr": "rate(kube_pod_container_status_restarts_total"
                    '{job="kube-state-metrics"}[10s]) * 60 * 5 > 0',
                    "for": "1s",
                    "labels": {"severity": "warning"},
                    "annotations": {
                        "description": "Pod {{ $labels.namespace }}/{{ $labels.pod }} "
                        "({{ $labels.container }}) is in waiting state (reason: "
                        '"CrashLoopBackOff").',
                        "summary": "Pod is crash looping.",
                    },
                }
            ],
        }
    ]
}


class StateMetrics:
    """kube-state-metrics' restart counters of two pods' ``api`` containers: they grow on
    every scrape while ``crashing``."""

    def __init__(self) -> None:
        self.crashing = False
        self.restarts = 0
        metrics = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if metrics.crashing:
                    metrics.restarts += 1
                body = "# TYPE kube_pod_container_status_restarts_total counter\n" + "".join(
                    "kube_pod_container_status_restarts_total"
                    f'{{namespace="production",pod="{pod}",container="api"}} {metrics.restarts}\n'
                    for pod in (POD, OTHER)
                )
                self.send_response(200)
                self.send_header("content-type", "text/plain; version=0.0.4")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"


@contextlib.contextmanager
def state_metrics() -> Iterator[StateMetrics]:
    metrics = StateMetrics()
    thread = threading.Thread(target=metrics.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield metrics
    finally:
        metrics.server.shutdown()
        metrics.server.server_close()
        thread.join(10)


def crash_looping_policy() -> dict[str, Any]:
    """The bundled ``kps-crash-looping`` with seconds where it has minutes."""
    document = yaml.safe_load((shorten.REMEDIATIONS / "optional" / KPS).read_text())
    [policy] = [p for p in document["policies"] if p["name"] == "kps-crash-looping"]
    policy["cooldown"] = "0s"
    verify = dict(policy["verify"])
    verify["promql"] = str(verify["promql"]).replace("[5m]", "[6s]")
    verify.update(window="20s", interval="1s")
    policy["verify"] = verify
    return policy


def test_crash_looping_pod_restarts_its_deployment_through_owner_references(
    tmp_path: Path,
) -> None:
    services.need_binary("prometheus")
    services.need_binary("prometheus-alertmanager", "alertmanager")
    with contextlib.ExitStack() as stack:
        receiver = stack.enter_context(receiver_mod.running())
        ksm = stack.enter_context(state_metrics())
        emulator = stack.enter_context(kube_thread.emulator())
        for obj in kube_objects.deployment_with_pods():
            emulator.add(obj)
        service_port = services.free_port()
        token_file = tmp_path / "webhook-token"
        token_file.write_text(TOKEN + "\n")
        alertmanager = stack.enter_context(
            services.alertmanager_server(
                yaml.safe_dump(
                    {
                        "route": {
                            "receiver": "conea-monitor",
                            "group_by": ["alertname", "namespace", "pod"],
                            "group_wait": "1s",
                            "group_interval": "1s",
                            "repeat_interval": "4h",
                        },
                        "receivers": [
                            {
                                "name": "conea-monitor",
                                "webhook_configs": [
                                    {
                                        "url": f"http://127.0.0.1:{service_port}/webhook/alertmanager",
                                        "send_resolved": True,
                                        "http_config": {
                                            "authorization": {"credentials_file": str(token_file)}
                                        },
                                    }
                                ],
                            }
                        ],
                    }
                )
            )
        )
        prometheus = stack.enter_context(
            services.prometheus_server(
                yaml.safe_dump(
                    {
                        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                        "rule_files": ["rules/*.yml"],
                        "alerting": {
                            "alertmanagers": [
                                {
                                    "static_configs": [
                                        {"targets": [f"127.0.0.1:{alertmanager.port}"]}
                                    ]
                                }
                            ]
                        },
                        "scrape_configs": [
                            {
                                "job_name": "kube-state-metrics",
                                "honor_labels": True,
                                "static_configs": [{"targets": [ksm.address]}],
                            }
                        ],
                    }
                ),
                {"rules/kube-prometheus-stack.yml": yaml.safe_dump(RULES)},
            )
        )
        policies = tmp_path / "remediations"
        policies.mkdir()
        (policies / "kps.yaml").write_text(yaml.safe_dump({"policies": [crash_looping_policy()]}))
        config = svc.write_config(
            tmp_path,
            policies=[str(policies)],
            prometheus_url=prometheus.url,
            alertmanager_url=alertmanager.url,
            verify_sweep_seconds=0.5,
            webhook={"bearer_token_file": str(token_file)},
            kubernetes={"mode": "kubeconfig", "kubeconfig": str(emulator.kubeconfig(tmp_path))},
            automation={"dry_run": False, "namespaces_allow": ["production"]},
            notifiers={"oncall": {"kind": "webhook", "url": f"{receiver.url}/oncall"}},
        )
        service = svc.start(config, port=service_port)
        stack.callback(services.stop, service.process)
        reader = {"authorization": f"Bearer {service.operator_token()}"}

        def executions() -> list[dict[str, Any]]:
            items: list[dict[str, Any]] = service.get(
                "/api/v1/executions",
                params={"alertname": "KubePodCrashLooping", "limit": 100},
                headers=reader,  # webhook credentials are set: reading needs one too
            ).json()["items"]
            return sorted(items, key=lambda e: e["id"])

        ksm.crashing = True
        both = wait_for(
            lambda: [e for e in executions() if e["state"] == "succeeded"][1:] and executions(),
            60,
            "KubePodCrashLooping of both pods to be acted on",
        )
        assert len(both) == 2
        [restart] = [
            e for e in both if e["actions"][0]["outcome"]["summary"].startswith("restarted")
        ]
        [other] = [e for e in both if e is not restart]
        # The second pod's alert finds its Deployment restarted moments ago: no second restart.
        assert other["actions"][0]["outcome"]["summary"].startswith(
            "skipped (not restarted): deployment production/conea-api restarted at "
        )
        # The alert names the pod, as kube-state-metrics labels it; the target key stays
        # the rendered pod (cooldowns and budgets count per pod).
        pod = restart["labels"]["pod"]
        assert {pod, other["labels"]["pod"]} == {POD, OTHER}
        assert "deployment" not in restart["labels"]
        assert restart["policy"] == "kps-crash-looping"
        assert restart["target_key"] == f"Pod/production/{pod}"
        plan = restart["actions"][0]["plan"]
        assert plan["summary"].endswith(
            f"(target Pod production/{pod} -> ReplicaSet conea-api-7d9f -> Deployment conea-api)"
        )
        assert plan["summary"].startswith("restart deployment production/conea-api")
        template = emulator.read("Deployment", "production", "conea-api")["spec"]["template"]
        assert RESTARTED in template["metadata"]["annotations"]

        # The restarts stop: Prometheus says so, and nobody is paged.
        ksm.crashing = False
        verified = wait_for(
            lambda: (
                [e for e in executions() if e["verify_state"] not in ("pending", None)][1:]
                and executions()
            ),
            60,
            "verification",
        )
        assert [e["verify_state"] for e in verified] == ["recovered", "recovered"]
        verified = next(e for e in verified if e["id"] == restart["id"])
        assert "returns no series" in verified["verify_detail"]
        assert "kube_pod_container_status_restarts_total" in verified["verify_detail"]
        assert not receiver.on("/oncall")
