"""``explain`` in rehearsal without Kubernetes credentials says what would run, as the
engine records it, instead of "cannot plan"; in live mode the missing credentials are
still an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine.conftest import alert, notification
from tests.support import service as svc
from tests.test_cli import POLICY, cli


@pytest.mark.parametrize(
    ("automation", "expected"),
    [
        (
            {},
            "plan kubernetes.set_env: would run kubernetes.set_env with "
            '{"env": {"RATE_LIMIT_PER_MINUTE": "100"}} (not planned against live state: '
            "no Kubernetes credentials",
        ),
        ({"mode": "live"}, "plan kubernetes.set_env: cannot plan: NotConfigured: "),
    ],
)
def test_explain_without_credentials(tmp_path: Path, automation: dict, expected: str) -> None:
    folder = tmp_path / "remediations"
    folder.mkdir()
    (folder / "p.yaml").write_text(POLICY)
    config = svc.write_config(
        tmp_path, policies=[str(folder)], kubernetes={"mode": "none"}, automation=automation
    )
    alert_file = tmp_path / "alert.json"
    alert_file.write_bytes(notification(alert("HighLoad", "aa01")))
    result = cli("explain", "--alert", str(alert_file), "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout, result.stdout
