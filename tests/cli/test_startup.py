"""The CLI's commands that talk to a running service load neither the server nor the store.

Importing the application, the engine, SQLAlchemy and FastAPI cost every such command about
2 s of CPU before it sent a request; a command run by hand at 3 a.m. (``conea-monitor
pause``) should answer at once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.services import free_port

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import json, sys
from monitor.cli import main
code = main(sys.argv[1:])
heavy = sorted(m for m in ("monitor.app", "monitor.engine", "fastapi", "sqlalchemy", "kubernetes")
               if m in sys.modules)
print(json.dumps({"code": code, "heavy": heavy}))
"""


@pytest.mark.parametrize("command", [["status"], ["pause", "--reason", "x"], ["history"]])
def test_a_command_over_http_loads_no_server_code(command: list[str], tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nobody listens: the command fails fast
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *command, "--url", url],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=60,
        check=False,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] == 1
    assert "no conea-monitor answers at " + url in done.stderr
    assert result["heavy"] == []


def test_the_package_still_offers_create_app() -> None:
    import monitor

    app = monitor.create_app
    assert callable(app)
    assert "create_app" in monitor.__all__
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = monitor.nothing
