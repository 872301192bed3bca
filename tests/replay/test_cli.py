"""The replay command: --alert FILE, bad arguments and an unreachable Prometheus (exit 2,
one line), and that only --record writes, one audit record."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text

from monitor import cli, settings
from monitor.store import database
from tests.replay import scenario
from tests.support import services

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "alertmanager"
DEMO_POLICY = """
policies:
  - name: demo
    match: ['alertname="DemoHighValue"']
    target: {kind: Deployment, namespace: "{{ labels.namespace }}", name: "{{ labels.deployment }}"}
    steps: [[{action: log}], [{action: log}]]
"""


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["replay", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_one_captured_payload_is_replayed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "demo.yaml").write_text(DEMO_POLICY)
    code, out, err = run(
        capsys,
        "--alert",
        str(FIXTURES / "firing-with-one-resolved.json"),
        "--until",
        "2026-11-28T16:00:00Z",
        "--policies",
        str(tmp_path / "demo.yaml"),
        "--json",
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["window"] == {
        "since": "2026-11-28T15:00:34.002000Z",
        "until": "2026-11-28T16:00:00Z",
        "step": None,
    }
    assert (report["episodes"], report["alerts"]) == (3, 3)
    [entry] = report["policies"]
    # Three alerts on one Deployment, as a batch of the engine: the first acts (it
    # resolved 2 s later: recovered), the second waits for the cooldown (5m) and the third
    # is coalesced into it. When it comes due both still fire: step 1 acts for the
    # oldest, then step 2 (it still fires after the verify window), and the ladder ends.
    assert entry["target"] == "Deployment/production/conea-api"
    assert (entry["executions"], entry["coalesced"], entry["recovered"]) == (3, 1, 1)
    assert entry["steps"] == {"1": 2, "2": 1}
    assert (entry["escalated"], entry["ladder_exhausted"]) == (1, 1)
    assert entry["deferred"]["cooldown"] == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--since", "yesterday"],
            "--since 'yesterday': neither a duration (7d, 2h30m) nor a time",
        ),
        (["--since", "40d"], "--since: the window is 40 days; replay reads at most 31 days"),
        (["--since", "1d", "--until", "soon"], "--until 'soon': neither a duration"),
        (["--since", "1d", "--step", "0s"], "--step 0s: must be between 1s and 1h"),
        (["--since", "1d", "--step", "often"], "--step: not a valid duration 'often'"),
        ([], "--since is required (or replay one payload with --alert FILE)"),
        (["--since", "1d"], "no Prometheus: give --prometheus URL or set prometheus_url"),
        (["--alert", "/nonexistent.json"], "cannot read '/nonexistent.json': No such file"),
        (
            ["--since", "7d", "--until", "0001-01-02T00:00Z"],
            "--since '7d': before the first representable time",
        ),
        (
            ["--alert", str(FIXTURES / "firing-single.json"), "--until", "2026-01-01T00:00Z"],
            "--until 2026-01-01T00:00:00+00:00 is before the payload's first startsAt",
        ),
    ],
)
def test_bad_arguments_exit_2_with_one_line_saying_why(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith(f"conea-monitor: error: {message}")
    assert "Traceback" not in err and err.count("\n") == 1


def test_a_payload_that_is_not_one_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"alerts": 3}')
    code, _, err = run(capsys, "--alert", str(bad))
    assert code == 2
    assert err.startswith(f"conea-monitor: error: {bad}: ")


def test_an_unreachable_prometheus_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{services.free_port()}"
    code, out, err = run(capsys, "--since", "1d", "--prometheus", url)
    assert (code, out) == (2, "")
    assert err == (
        f"conea-monitor: error: cannot reach Prometheus at {url}: ConnectionError; "
        "check --prometheus or prometheus_url\n"
    )


def _rows(url: str) -> dict[str, list[Any]]:
    db = database.connect(url)
    try:
        with db.connect() as conn:
            return {
                t: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {t}"))]
                for t in inspect(conn).get_table_names()
            }
    finally:
        db.dispose()


def test_only_record_writes_and_it_writes_one_audit_record(
    capsys: pytest.CaptureFixture[str],
    history_prometheus: services.Prometheus,
    policies: Path,
    config: Path,
) -> None:
    url = settings.load(config).database_url
    argv = [
        "-c",
        str(config),
        "--since",
        scenario.START.isoformat(),
        "--until",
        scenario.UNTIL.isoformat(),
        "--prometheus",
        history_prometheus.url,
        "--json",
    ]
    assert run(capsys, *argv)[0] == 0
    assert not (config.parent / "data").exists()  # no store was even opened
    db = database.connect(url)
    database.migrate(db)
    db.dispose()
    before = _rows(url)
    code, out, _ = run(capsys, *argv)
    assert code == 0 and _rows(url) == before
    code, out, _ = run(capsys, *argv, "--record")
    assert code == 0
    after = _rows(url)
    assert {t: rows for t, rows in after.items() if t != "audit"} == {
        t: rows for t, rows in before.items() if t != "audit"
    }
    db = database.connect(url)
    with db.connect() as conn:
        new = conn.execute(text("SELECT kind, message, details FROM audit")).all()[
            len(before["audit"]) :
        ]
    db.dispose()
    assert len(new) == 1
    kind, message, details = new[0]
    assert kind == "replay"
    assert message == (
        "replay 2026-03-02T00:00:00Z .. 2026-03-04T00:00:00Z: 17 episodes, 12 executions"
    )
    stored = json.loads(details) if isinstance(details, str) else details
    assert stored == json.loads(out)


class _NotPrometheus(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>hello</html>", "answered 'ALERTS{alertstate=\"firing\"}' with something else"),
        (
            b'{"status": "success", "data": {"resultType": "matrix", '
            b'"result": [{"metric": {}, "values": 3}]}}',
            "answered with something else than a matrix",
        ),
        (
            b'{"status": "success", "data": {"resultType": "matrix", '
            b'"result": [{"metric": {}, "values": [["soon", "1"]]}]}}',
            "answered with a malformed time 'soon'",
        ),
    ],
)
def test_a_server_that_is_not_prometheus_exits_2(
    capsys: pytest.CaptureFixture[str], body: bytes, message: str
) -> None:
    handler = type("Handler", (_NotPrometheus,), {"body": body})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        code, out, err = run(capsys, "--since", "1h", "--prometheus", url)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert (code, out) == (2, "")
    assert err.startswith(f"conea-monitor: error: {url}") or err.startswith(
        f"conea-monitor: error: Prometheus at {url}"
    )
    assert message in err and err.count("\n") == 1
