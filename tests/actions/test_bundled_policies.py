"""The bundled policies (remediations/) call these actions with valid parameters."""

from __future__ import annotations

import glob
import os

import yaml

from monitor.actions import http, notify, postgres, registry

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_bundled_policy_steps_validate_against_the_action_params() -> None:
    reg = registry.Registry()
    for module in (http, notify, postgres):
        module.register(reg)
    checked = []
    for path in sorted(glob.glob(os.path.join(ROOT, "remediations", "*.yaml"))):
        with open(path) as fh:
            doc = yaml.safe_load(fh) or {}
        for policy in doc.get("policies", []):
            for step in policy.get("steps", []):
                for call in step:
                    if call["action"] in reg:
                        reg.parse_params(call["action"], call.get("with", {}))
                        checked.append(call["action"])
    assert {"http.request", "notify", "postgres.terminate_idle_in_transaction"} <= set(checked)
