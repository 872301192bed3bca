"""Secret references, redaction, and the target models that hold them."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from monitor import secrets, targets
from monitor.errors import ConfigError


def test_secret_ref_reads_env_and_file_at_use_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKEN_A", "first-value")
    ref = secrets.SecretRef(env="TOKEN_A")
    assert ref.resolve() == "first-value"
    monkeypatch.setenv("TOKEN_A", "rotated-value")
    assert ref.resolve() == "rotated-value"  # read at use time, not cached
    path = tmp_path / "token"
    path.write_text("from-file-value\n")
    assert secrets.SecretRef(file=path).resolve() == "from-file-value"
    assert "value" not in repr(ref) and repr(ref) == "SecretRef(env='TOKEN_A', file=None)"


def test_secret_errors_name_the_reference_never_a_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOPE", raising=False)
    with pytest.raises(ConfigError, match="secret env:NOPE: environment variable 'NOPE' is not"):
        secrets.SecretRef(env="NOPE").resolve()
    with pytest.raises(ConfigError, match=r"secret file:.*missing: cannot read file: No such"):
        secrets.SecretRef(file=tmp_path / "missing").resolve()
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        secrets.SecretRef(file=tmp_path / "empty").resolve()
    with pytest.raises(ValidationError, match="exactly one of 'env' or 'file'"):
        secrets.SecretRef.model_validate({"env": "A", "file": "/b"})
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        secrets.SecretRef.model_validate({"vault": "kv/x"})


def test_redactor_masks_values_in_nested_data() -> None:
    redactor = secrets.Redactor(["tok-123456", "ab"])
    data = {"msg": "Bearer tok-123456 failed", "list": ["tok-123456", 3], "short": "ab"}
    assert redactor.value(data) == {
        "msg": "Bearer <redacted> failed",
        "list": ["<redacted>", 3],
        "short": "ab",
    }


def test_markers_show_and_materialize(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K", "key-material")
    raw = {
        "a": {"secret": {"env": "K"}, "prefix": "Key "},
        "b": [{"secret": {"env": "K"}}],
        "c": {"secret": "not a marker", "other": 1},
    }
    parsed = secrets.parse_markers(raw)
    assert secrets.show(parsed) == {
        "a": "Key <secret env:K>",
        "b": ["<secret env:K>"],
        "c": {"secret": "not a marker", "other": 1},
    }
    redactor = secrets.Redactor()
    assert secrets.materialize(parsed, redactor)["a"] == "Key key-material"
    assert redactor.text("key-material") == "<redacted>"


def test_log_filter_masks_resolved_secrets(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("LOGGED", "logged-secret-9911")
    secrets.protect_logger("conea.test.client")
    secrets.protect_logger("conea.test.client")  # idempotent
    assert len(logging.getLogger("conea.test.client").filters) == 1
    secrets.SecretRef(env="LOGGED").resolve()
    with caplog.at_level(logging.INFO):
        logging.getLogger("conea.test.client").info("GET %s", "https://x/logged-secret-9911")
    assert caplog.messages == ["GET https://x/<redacted>"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("10m", 600),
        ("1h30m", 5400),
        ("500ms", 0.5),
        ("1d", 86400),
        (90, 90),
        ("2.5s", 2.5),
    ],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert targets.parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["10", "m", "10 m", "1h 30m", "-5s", "", True])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        targets.parse_duration(text)


def test_postgres_target(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("pg-pass-0000\n")
    target = targets.PostgresTarget.model_validate(
        {
            "host": "db.conea.io",
            "dbname": "conea_production",
            "user": "monitor",
            "password_file": str(pw),
            "sslmode": "verify-full",
        }
    )
    assert target.describe() == "monitor@db.conea.io:5432/conea_production"
    kwargs = target.connect_kwargs("other")
    assert kwargs["password"] == "pg-pass-0000" and kwargs["dbname"] == "other"
    assert kwargs["application_name"] == "conea-monitor"
    assert "pg-pass-0000" not in repr(target) and "pg-pass-0000" not in target.model_dump_json()
    with pytest.raises(ValidationError, match="set at most one of password_file, password_env"):
        targets.PostgresTarget.model_validate(
            {"host": "h", "user": "u", "password_file": "/x", "password_env": "Y"}
        )
    with pytest.raises(ValidationError, match="sslmode"):
        targets.PostgresTarget.model_validate({"host": "h", "user": "u", "sslmode": "on"})
    with pytest.raises(ValidationError, match="password\n  Extra inputs are not permitted"):
        targets.PostgresTarget.model_validate({"host": "h", "user": "u", "password": "x"})
