"""The whole loop on 127.0.0.1: demo API, conea-monitor, Prometheus, Alertmanager and the
Kubernetes emulator, wired as production wires them. Used by ``tests/e2e`` and ``make demo``.

* the demo API (``demo.app``) with its load generator, the ``conea-api`` Deployment;
* the Kubernetes emulator (``tests/support/kube_thread``) holding ``production/conea-api``
  (4 replicas) and its HPA (min 4, max 10);
* conea-monitor (``python -m monitor serve``) with the shortened bundled policies, a
  Bearer token file for its webhook, ``prometheus_url`` and ``alertmanager_url``, and a
  ``oncall`` notifier posting to a local receiver;
* Prometheus scraping the demo, the service's ``/metrics`` and its ``/probe`` of the
  demo's ``/healthz``, every second, with the shipped ``rules/`` shortened;
* Alertmanager routing everything to the service's webhook (Bearer credentials from a
  file) and copying each notification to the local receiver.

The ports are chosen first, so each program's config can name the others.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from demo import app as demo_app
from demo import receiver as receiver_mod
from demo import shorten
from tests.support import kube_thread, services
from tests.support import service as svc
from tests.support.kube_objects import deployment, hpa

NAMESPACE = "production"
NAME = "conea-api"
TOKEN = "e2e-webhook-token"  # noqa: S105 (a throwaway credential for local programs)
VIEWER_TOKEN = "e2e-viewer-token"  # noqa: S105 (reads the service's API)


def prometheus_config(demo: int, service: int, alertmanager: int) -> str:
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": ["rules/*.yml"],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager}"]}]}]
        },
        "scrape_configs": [
            {
                "job_name": NAME,
                "static_configs": [
                    {
                        "targets": [f"127.0.0.1:{demo}"],
                        "labels": {"namespace": NAMESPACE, "service": NAME, "deployment": NAME},
                    }
                ],
            },
            {
                "job_name": "conea-monitor",
                "static_configs": [{"targets": [f"127.0.0.1:{service}"]}],
            },
            {
                # blackbox-style: the target is a parameter, the address is the prober.
                "job_name": "probe-conea-api",
                "metrics_path": "/probe",
                "params": {"module": ["http_2xx"]},
                "static_configs": [
                    {
                        "targets": [f"http://127.0.0.1:{demo}/healthz"],
                        "labels": {"namespace": NAMESPACE, "deployment": NAME},
                    }
                ],
                "relabel_configs": [
                    {"source_labels": ["__address__"], "target_label": "__param_target"},
                    {"source_labels": ["__param_target"], "target_label": "instance"},
                    {"target_label": "__address__", "replacement": f"127.0.0.1:{service}"},
                ],
            },
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)


def alertmanager_config(service: int, receiver_url: str, token_file: Path) -> str:
    config = {
        "route": {
            "receiver": "conea-monitor",
            "group_by": ["alertname", "namespace", "service", "instance"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "4h",
            "routes": [
                # A copy of every notification for the test to read (and replay).
                {"receiver": "copy", "matchers": ['alertname=~".+"'], "continue": True},
                {"receiver": "conea-monitor", "matchers": ['alertname=~".+"']},
            ],
        },
        "receivers": [
            {
                "name": "conea-monitor",
                "webhook_configs": [
                    {
                        "url": f"http://127.0.0.1:{service}/webhook/alertmanager",
                        "send_resolved": True,
                        "http_config": {"authorization": {"credentials_file": str(token_file)}},
                    }
                ],
            },
            {
                "name": "copy",
                "webhook_configs": [{"url": f"{receiver_url}/alertmanager", "send_resolved": True}],
            },
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)


@dataclass
class Stack:
    demo: demo_app.Demo
    service: svc.Service
    prometheus: services.Prometheus
    alertmanager: services.Alertmanager
    emulator: kube_thread.ThreadedEmulator
    receiver: receiver_mod.Receiver
    directory: Path

    # Reading the state -------------------------------------------------------------------

    def api(self, path: str, **params: Any) -> list[dict[str, Any]]:
        answer = self.service.get(
            f"/api/v1/{path}",
            params={"limit": 1000, **params},
            headers={"authorization": f"Bearer {VIEWER_TOKEN}"},
        )
        answer.raise_for_status()
        items: list[dict[str, Any]] = answer.json()["items"]
        return items

    def executions(self, **params: Any) -> list[dict[str, Any]]:
        return sorted(self.api("executions", **params), key=lambda e: e["id"])

    def audit(self, **params: Any) -> list[dict[str, Any]]:
        return list(reversed(self.api("audit", **params)))  # oldest first

    def hpa(self) -> dict[str, Any]:
        return self.emulator.read("HorizontalPodAutoscaler", NAMESPACE, NAME)

    def deployment(self) -> dict[str, Any]:
        return self.emulator.read("Deployment", NAMESPACE, NAME)

    def prometheus_alerts(self, alertname: str) -> list[dict[str, Any]]:
        """Prometheus's own view: pending and firing alerts with activeAt."""
        data = httpx.get(f"{self.prometheus.url}/api/v1/alerts", timeout=10).json()
        return [a for a in data["data"]["alerts"] if a["labels"]["alertname"] == alertname]

    def firing_in_alertmanager(self, alertname: str) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = httpx.get(
            f"{self.alertmanager.url}/api/v2/alerts",
            params={"filter": f'alertname="{alertname}"', "active": "true"},
            timeout=10,
        ).json()
        return alerts

    def posted_by_alertmanager(self, alertname: str, status: str) -> list[receiver_mod.Received]:
        """Notifications Alertmanager sent (the copy route) for ``alertname``."""
        return [
            r
            for r in self.receiver.on("/alertmanager")
            if r.json()["status"] == status
            and any(a["labels"].get("alertname") == alertname for a in r.json()["alerts"])
        ]

    def pages(self) -> list[dict[str, Any]]:
        """What the ``oncall`` notifier received."""
        return [r.json() for r in self.receiver.on("/oncall")]


def parse_time(text: str) -> datetime:
    """RFC 3339 from Prometheus, Alertmanager or the service (nanoseconds cut to micro)."""
    text = text.replace("Z", "+00:00")
    head, sep, rest = text.partition(".")
    if sep:
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    return datetime.fromisoformat(text)


@contextlib.contextmanager
def running(directory: Path | None = None) -> Iterator[Stack]:
    """Start everything (about 8 s); stop everything on the way out, whatever happens."""
    with contextlib.ExitStack() as stack:
        if directory is None:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="conea-e2e-")))
        demo_port, service_port = services.free_port(), services.free_port()
        receiver = stack.enter_context(receiver_mod.running())
        demo = stack.enter_context(demo_app.running(demo_port))
        emulator = stack.enter_context(kube_thread.emulator())
        emulator.add(deployment())
        emulator.add(hpa())

        token_file = directory / "webhook-token"
        token_file.write_text(TOKEN + "\n")
        alertmanager = stack.enter_context(
            services.alertmanager_server(
                alertmanager_config(service_port, receiver.url, token_file)
            )
        )
        prometheus = stack.enter_context(
            services.prometheus_server(
                prometheus_config(demo_port, service_port, alertmanager.port),
                shorten.rule_files(),
            )
        )

        policies = directory / "remediations"
        policies.mkdir(exist_ok=True)
        (policies / "e2e.yaml").write_text(shorten.policies_file())
        config = svc.write_config(
            directory,
            policies=[str(policies)],
            public_url=f"http://127.0.0.1:{service_port}",
            prometheus_url=prometheus.url,
            alertmanager_url=alertmanager.url,
            verify_sweep_seconds=0.5,
            webhook={"bearer_token_file": str(token_file)},
            access={"viewer_token": VIEWER_TOKEN},
            kubernetes={"mode": "kubeconfig", "kubeconfig": str(emulator.kubeconfig(directory))},
            automation={"dry_run": False, "namespaces_allow": [NAMESPACE]},
            notifiers={"oncall": {"kind": "webhook", "url": f"{receiver.url}/oncall"}},
        )
        service = svc.start(config, port=service_port)
        stack.callback(services.stop, service.process)
        scraping(prometheus)
        yield Stack(demo, service, prometheus, alertmanager, emulator, receiver, directory)


def scraping(prometheus: services.Prometheus, timeout: float = 30) -> None:
    """Wait until Prometheus has scraped every target (it starts them up to 5 s after it
    starts) and no alert is pending or firing: ``absent(up{job="conea-monitor"})`` is
    true until the first scrape of the service."""

    def ready() -> bool:
        targets = httpx.get(f"{prometheus.url}/api/v1/targets", timeout=5).json()
        active = targets["data"]["activeTargets"]
        alerts = httpx.get(f"{prometheus.url}/api/v1/alerts", timeout=5).json()
        return (
            bool(active)
            and all(t["health"] == "up" for t in active)
            and not (alerts["data"]["alerts"])
        )

    services.wait_for(ready, timeout, "Prometheus scraping every target")
