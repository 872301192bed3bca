"""The import-linter contracts in ``.importlinter`` hold, and each one fails when broken."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / ".importlinter"
LINT = (
    "import sys; from importlinter.cli import lint_imports; "
    "sys.exit(lint_imports(no_cache=True, no_logo=True))"
)

# One import per contract that the contract forbids, appended to a copy of monitor/.
FORBIDDEN = {
    "kubernetes": ("monitor/api/health.py", "import kubernetes"),
    "sqlalchemy": ("monitor/runtime.py", "import sqlalchemy"),
    "engine-up": ("monitor/engine/timers.py", "import monitor.wiring"),
    "actions-down": ("monitor/actions/builtin.py", "import monitor.store.executions"),
    "store-down": ("monitor/store/queries.py", "import monitor.policy"),
    "k8s-down": ("monitor/k8s/names.py", "import monitor.actions.registry"),
    "guardrails-pure": ("monitor/engine/guardrails.py", "import monitor.store.executions"),
    "acyclic": ("monitor/heartbeat.py", "import monitor.runtime"),
    "engine-acyclic": ("monitor/engine/clock.py", "import monitor.engine.core"),
    "replay-reads": ("monitor/replay/report.py", "import monitor.store.facade"),
}


def contracts() -> dict[str, str]:
    parser = configparser.ConfigParser()
    parser.read(CONFIG)
    prefix = "importlinter:contract:"
    return {s[len(prefix) :]: parser[s]["name"] for s in parser.sections() if s.startswith(prefix)}


def lint(root: Path) -> tuple[int, dict[str, str]]:
    env = {**os.environ, "PYTHONPATH": str(root), "COLUMNS": "200"}
    run = subprocess.run(
        [sys.executable, "-c", LINT], cwd=root, env=env, capture_output=True, text=True
    )
    verdicts = {}
    for name in contracts().values():
        for line in run.stdout.splitlines():
            if line.startswith(f"{name} ") and line.split()[-1] in ("KEPT", "BROKEN"):
                verdicts[name] = line.split()[-1]
    return run.returncode, verdicts


def test_every_contract_is_checked_and_holds() -> None:
    assert set(contracts()) == set(FORBIDDEN)
    code, verdicts = lint(ROOT)
    assert verdicts == {name: "KEPT" for name in contracts().values()}
    assert code == 0


def test_a_forbidden_import_breaks_its_contract(tmp_path: Path) -> None:
    shutil.copytree(
        ROOT / "monitor", tmp_path / "monitor", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(CONFIG, tmp_path / ".importlinter")
    for path, line in FORBIDDEN.values():
        with open(tmp_path / path, "a") as f:
            f.write(f"\n{line}  # noqa\n")
    code, verdicts = lint(tmp_path)
    assert verdicts == {name: "BROKEN" for name in contracts().values()}
    assert code == 1
