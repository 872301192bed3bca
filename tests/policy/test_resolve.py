"""The policy's ``target.resolve``: only ``owner`` is known, checked at load time."""

from __future__ import annotations

from pathlib import Path

from monitor.actions.registry import Registry
from monitor.policy import loader

POLICY = (
    "policies:\n"
    "  - name: p\n"
    "    match: ['alertname=\"KubePodCrashLooping\"']\n"
    "    target: {{kind: Pod, namespace: '{{{{ labels.namespace }}}}',\n"
    "             name: '{{{{ labels.pod }}}}', resolve: {resolve}}}\n"
    "    steps: [[{{action: log}}]]\n"
)


def test_resolve_owner_loads_and_reaches_the_rendered_target(
    tmp_path: Path, registry: Registry
) -> None:
    (tmp_path / "p.yaml").write_text(POLICY.format(resolve="owner"))
    report = loader.check([tmp_path], registry)
    assert report.errors == []
    policy = loader.load([tmp_path], registry).get("p")
    assert policy is not None and policy.target["resolve"].render({}) == "owner"


def test_an_unknown_resolve_is_an_error_at_the_target(tmp_path: Path, registry: Registry) -> None:
    (tmp_path / "p.yaml").write_text(POLICY.format(resolve="parent"))
    report = loader.check([tmp_path], registry)
    assert report.errors == [
        f"{tmp_path}/p.yaml:4:13: policies[0].target: resolve: 'parent' is not known "
        "(resolve: owner)"
    ]
