"""The documented Alertmanager routing, run through ``amtool config routes test``.

docs/helm.md's kube-prometheus-stack values are applied to the configuration that chart
renders by default (tests/fixtures/kube-prometheus-stack/alertmanager-default.yaml) with
Helm's rules — maps merge, lists replace — and docs/rules-and-dashboards.md's
alertmanager.yml is taken as it is. For each, amtool says where every alert goes, and
the bundled policies say whether conea-monitor pages for it at once: an alert must reach
one pager, never two, and a critical one must reach one.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.actions import default_registry
from monitor.policy import loader, policyset
from tests.support import services

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
KPS_DEFAULT = ROOT / "tests/fixtures/kube-prometheus-stack/alertmanager-default.yaml"
WEBHOOK = "conea-monitor"
PAGER = "oncall"


def _documented_yaml(doc: str, marker: str) -> dict[str, Any]:
    """The ```yaml block right after the ``<!-- ... -->`` marker naming this test."""
    text = (ROOT / "docs" / doc).read_text()
    found = re.search(
        rf"<!-- {re.escape(marker)}: tested by tests/helm/test_alertmanager_routes.py -->\n"
        r"```yaml\n(.*?)```",
        text,
        re.S,
    )
    assert found, f"docs/{doc} lost its tested {marker} block"
    data = yaml.safe_load(found.group(1))
    assert isinstance(data, dict)
    return data


def _helm_merge(base: Any, override: Any) -> Any:
    """Helm's values merge: maps merge key by key, anything else (lists too) replaces."""
    if isinstance(base, Mapping) and isinstance(override, Mapping):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _helm_merge(base.get(key), value) if key in base else value
        return merged
    return override


def _kps_config() -> dict[str, Any]:
    values = _documented_yaml("helm.md", "kube-prometheus-stack values")
    result = _helm_merge(yaml.safe_load(KPS_DEFAULT.read_text()), values["alertmanager"]["config"])
    assert isinstance(result, dict)
    return result


def _plain_config() -> dict[str, Any]:
    return _documented_yaml("rules-and-dashboards.md", "alertmanager.yml")


CONFIGS = {"kube-prometheus-stack": _kps_config, "alertmanager.yml": _plain_config}


@pytest.fixture(scope="module")
def amtool() -> str:
    return services.need_binary("amtool")


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def config(
    request: pytest.FixtureRequest, amtool: str, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    path = tmp_path_factory.mktemp("am") / "alertmanager.yml"
    path.write_text(yaml.safe_dump(CONFIGS[request.param]()))
    checked = subprocess.run(
        [amtool, "check-config", str(path)], capture_output=True, text=True, timeout=30, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    return path


def _receivers(amtool: str, config: Path, labels: Mapping[str, str]) -> list[str]:
    args = [f'{name}="{value}"' for name, value in labels.items()]
    result = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={config}", "--", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().split(",")


def _bundled_alerts() -> list[dict[str, str]]:
    """Every alert the bundled rules can raise, with its static labels."""
    alerts = []
    for path in sorted((ROOT / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    labels = {k: v for k, v in rule.get("labels", {}).items() if "{{" not in v}
                    alerts.append({"alertname": rule["alert"], **labels, "namespace": "production"})
    return alerts


# kube-prometheus-stack's own alerts that its optional policies handle, and its heartbeat.
KPS_ALERTS = [
    {"alertname": "Watchdog", "severity": "none"},
    {"alertname": "InfoInhibitor", "severity": "none"},
    {"alertname": "KubePodCrashLooping", "severity": "warning", "namespace": "production"},
    {"alertname": "KubeAPIDown", "severity": "critical"},
    {"alertname": "CPUThrottlingHigh", "severity": "info", "namespace": "production"},
]


def _pages_at_once(policies: policyset.PolicySet, labels: Mapping[str, str]) -> list[str]:
    """The bundled policies that notify someone in their first step for this alert."""
    return [
        policy.name
        for policy in policies.match(labels)
        if any(action.action == "notify" for action in policy.steps[0])
    ]


@pytest.fixture(scope="module")
def policies() -> policyset.PolicySet:
    return loader.load([ROOT / "remediations"], default_registry(), strict_actions=True)


def test_every_alert_reaches_one_pager_and_every_critical_one_reaches_one(
    amtool: str, config: Path, policies: policyset.PolicySet
) -> None:
    for labels in [*_bundled_alerts(), *KPS_ALERTS]:
        receivers = _receivers(amtool, config, labels)
        pagers = [r for r in receivers if r == PAGER]
        if WEBHOOK in receivers:
            pagers += _pages_at_once(policies, labels)
        assert len(pagers) <= 1, (labels, receivers, pagers)
        if labels.get("severity") == "critical":
            assert len(pagers) == 1, (labels, receivers, pagers)


def test_alerts_about_conea_monitor_go_to_a_person_not_to_its_webhook(
    amtool: str, config: Path
) -> None:
    for name in ("ConeaMonitorDown", "ConeaMonitorAbsent", "ConeaMonitorRemediationsFailing"):
        assert _receivers(amtool, config, {"alertname": name, "severity": "critical"}) == [PAGER]


def test_kube_prometheus_stack_keeps_its_own_routes(amtool: str, tmp_path: Path) -> None:
    """Rendered the way Helm would, the heartbeat still goes nowhere, info alerts stay
    quiet and kube-prometheus-stack's warnings reach conea-monitor."""
    config = _kps_config()
    assert {"name": "null"} in config["receivers"]
    rendered = tmp_path / "alertmanager.yml"
    rendered.write_text(yaml.safe_dump(config))
    assert _receivers(amtool, rendered, {"alertname": "Watchdog", "severity": "none"}) == ["null"]
    info = {"alertname": "CPUThrottlingHigh", "severity": "info"}
    assert _receivers(amtool, rendered, info) == ["null"]
    crash = {"alertname": "KubePodCrashLooping", "severity": "warning"}
    assert _receivers(amtool, rendered, crash) == [WEBHOOK]
