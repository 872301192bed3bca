"""Metric labels never carry an unbounded value taken from alerts."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from monitor import metrics as metrics_mod
from tests.engine.conftest import alert, harness, wait_for
from tests.support import kube_thread

SCALE = """
policies:
  - name: scale-named
    match: ['alertname="Busy"']
    target: {kind: Deployment, namespace: production, name: "{{ labels.deployment }}"}
    steps: [[{action: kubernetes.scale, with: {replicas: 3}}]]
    cooldown: 0s
"""


def series(text: str) -> list[dict[str, str]]:
    return [
        sample.labels
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.name.endswith("_created")
    ]


def test_alerts_naming_missing_deployments_add_no_series(
    tmp_path: Path, emu: kube_thread.ThreadedEmulator
) -> None:
    with harness(tmp_path, SCALE, emulator=emu) as h:
        before = len(series(httpx.get(f"{h.service.url}/metrics").text))
        h.post(
            *(alert("Busy", f"m{n:03d}", deployment=f"missing-{n}") for n in range(300)),
            alert("Busy", "real", deployment="conea-api"),
        )

        def finished() -> bool:
            done = [e for e in h.executions() if e["state"] in ("failed", "succeeded")]
            return len(done) == 301

        wait_for(finished, 90, "the 301 executions to finish")
        text = httpx.get(f"{h.service.url}/metrics").text
    labels = series(text)
    assert not [s for s in labels if any("missing-" in v for v in s.values())]
    remediated = [
        s for s in labels if s.get("target") is not None and s.get("policy") == "scale-named"
    ]
    assert remediated == [{"policy": "scale-named", "target": "Deployment/production/conea-api"}]
    # A handful of new series (policy/action/outcome and the like), not one per target.
    assert len(labels) - before < 40


def test_target_label_values_are_bounded() -> None:
    m = metrics_mod.Metrics()
    for n in range(metrics_mod.MAX_TARGETS + 50):
        m.target_remediated("scale", f"Deployment/production/d{n}")
    m.target_remediated("scale", "Deployment/production/d0")
    targets = {
        s.labels["target"]: s.value
        for family in m.registry.collect()
        if family.name == "conea_monitor_target_remediations"
        for s in family.samples
        if s.name.endswith("_total")
    }
    assert len(targets) == metrics_mod.MAX_TARGETS + 1
    assert targets[metrics_mod.OTHER] == 50.0
    assert targets["Deployment/production/d0"] == 2.0
