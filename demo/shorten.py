"""The shipped rules and policies with their durations shortened, for tests and the demo.

Nothing under ``rules/`` or ``remediations/`` is edited: these functions read the
shipped files and return modified copies, which are given to Prometheus and to the
service under test. In production an alert needs 2-5 minutes of bad data and a
verification waits minutes; here seconds, so the whole loop runs in under a minute.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "rules"
REMEDIATIONS = ROOT / "remediations"

# A PromQL range selector such as [5m] or [1h] (not a subquery such as [5m:1m]).
_RANGE = re.compile(r"\[(\d+[smhdwy])+\]")


ABSENT_FOR = "30s"


def rule_files(for_: str = "2s", window: str = "10s") -> dict[str, str]:
    """Every ``rules/*.yml`` with each ``for:`` set to ``for_`` and each range selector
    (``[5m]``) set to ``window``: a rate over 5 minutes would keep an alert firing for
    5 minutes after the demo recovered."""
    files = {}
    for path in sorted(RULES.glob("*.yml")):
        data = yaml.safe_load(path.read_text())
        for group in data.get("groups", []):
            for rule in group.get("rules", []):
                if "for" in rule:
                    # absent(...) is true until Prometheus's first scrape: keep such an
                    # alert from firing in the seconds the programs take to start.
                    rule["for"] = ABSENT_FOR if "absent(" in str(rule["expr"]) else for_
                rule["expr"] = _RANGE.sub(f"[{window}]", str(rule["expr"]))
        files[f"rules/{path.name}"] = yaml.safe_dump(data, sort_keys=False)
    return files


def bundled_policy(name: str) -> dict[str, Any]:
    """The policy called ``name`` from ``remediations/*.yaml``, as data."""
    for path in sorted(REMEDIATIONS.glob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        for policy in data.get("policies", []):
            if policy.get("name") == name:
                return copy.deepcopy(dict(policy))
    raise LookupError(f"no policy {name!r} in {REMEDIATIONS}")


def high_error_rate(window: str = "4s", verify_window: str = "30s") -> dict[str, Any]:
    """The bundled ``high-error-rate`` policy with seconds where it has minutes: no
    cooldown, its verification query's rate window and the verification window
    shortened, and the revert 2s after the alert resolves."""
    policy = bundled_policy("high-error-rate")
    policy["cooldown"] = "0s"
    verify = dict(policy["verify"])
    verify["promql"] = _RANGE.sub(f"[{window}]", str(verify["promql"]))
    verify.update(window=verify_window, interval="1s")
    policy["verify"] = verify
    policy["revert"] = {"enabled": True, "after": "2s"}
    return policy


def restart_unresponsive_api(verify_window: str = "4s") -> dict[str, Any]:
    """The bundled ``restart-unresponsive-api`` policy, with a verification window of
    seconds instead of 5 minutes and no cooldown."""
    policy = bundled_policy("restart-unresponsive-api")
    policy["cooldown"] = "0s"
    policy["verify"] = {**policy.get("verify", {}), "window": verify_window, "interval": "1s"}
    return policy


def policies_file() -> str:
    return yaml.safe_dump(
        {"policies": [high_error_rate(), restart_unresponsive_api()]}, sort_keys=False
    )
