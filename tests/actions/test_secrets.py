"""Secret references, redaction, and the target models that hold them."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
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


def test_notifier_timeout_reads_the_one_grammar() -> None:
    timeouts = [
        targets.Notifier(kind="slack", url="https://hooks.example/x", timeout=value).timeout
        for value in ("2.5s", "1m", 10)
    ]
    assert timeouts == [2.5, 60.0, 10.0]
    with pytest.raises(ValidationError, match="not a valid duration '10 s'"):
        targets.Notifier(kind="slack", url="https://hooks.example/x", timeout="10 s")


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


def test_surrounding_whitespace_is_stripped_with_a_warning_naming_the_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    monkeypatch.setenv("WS_TOKEN", "  spaced-token-4455\r\n")
    assert secrets.SecretRef(env="WS_TOKEN").resolve() == "spaced-token-4455"
    plain = tmp_path / "plain"
    plain.write_text("file-token-4455\n")  # one final newline: the usual text file
    assert secrets.SecretRef(file=plain).resolve() == "file-token-4455"
    padded = tmp_path / "padded"
    padded.write_text("file-token-4455 \n\n")
    assert secrets.SecretRef(file=padded).resolve() == "file-token-4455"
    assert caplog.messages == [
        "surrounding whitespace (leading 2, trailing 2 character(s)) removed from the value "
        "of secret env:WS_TOKEN",
        "surrounding whitespace (trailing 3 character(s)) removed from the value "
        f"of secret file:{padded}",
    ]
    assert "token-4455" not in caplog.text


@pytest.mark.parametrize(
    "shown",
    [
        pytest.param("Illegal header value b'Bearer tok+en/9 9\\n'", id="repr"),
        pytest.param('{"error": "bad token \\"tok+en/9 9\\\\n\\""}', id="json"),
        pytest.param("token=tok%2Ben%2F9%209%0A", id="quote"),
        pytest.param("token=tok%2ben%2f9%209", id="quote-lower-hex"),
        pytest.param("token=tok%2Ben/9%209", id="quote-keeping-slash"),
        pytest.param("token=tok%2Ben%2F9+9", id="quote_plus"),
        pytest.param("token= tok+en/9 9 \t", id="with-whitespace"),
    ],
)
def test_redactor_masks_escaped_and_encoded_forms(shown: str) -> None:
    redactor = secrets.Redactor(["tok+en/9 9\n"])
    assert "<redacted>" in redactor.text(shown)
    assert "en/9" not in redactor.text(shown) and "en%2" not in redactor.text(shown).lower()


def test_redactor_masks_the_parts_of_a_secret_url_a_server_may_echo() -> None:
    url = (
        "https://hooks.slack.com/services/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?k=v4lue-99x"
    )
    redactor = secrets.Redactor([url])
    assert redactor.text("no route /services/T0AB12CD3/B0EF45GH6/Zx9yW8vU7tS6rQ5pO4nM3lK2") == (
        "no route <redacted>"
    )
    assert redactor.text("invalid_token Zx9yW8vU7tS6rQ5pO4nM3lK2 for T0AB12CD3") == (
        "invalid_token <redacted> for <redacted>"
    )
    assert redactor.text("bad key v4lue-99x") == "bad key <redacted>"
    # Words of the URL that are no tokens stay readable everywhere else.
    assert redactor.text("hooks.slack.com services") == "hooks.slack.com services"


def test_short_values_are_not_masked_in_free_text() -> None:
    redactor = secrets.Redactor(["ab", " abc\n"])
    assert redactor.text("ab abc lab") == "ab abc lab" and len(redactor) == 0


def test_excerpt_masks_before_cutting_and_says_it_cut() -> None:
    redactor = secrets.Redactor(["straddling-secret-77"])
    text = "a" * 505 + "straddling-secret-77" + "b" * 10_000
    assert redactor.excerpt(text) == "a" * 505 + "<redact…(truncated)"
    assert redactor.excerpt("short straddling-secret-77") == "short <redacted>"


def test_the_process_redactor_forgets_the_oldest_value_never_the_newest() -> None:
    known = secrets._Known(limit=2)
    for value in ("first-secret-1", "second-secret-2", "third-secret-3"):
        known.add(value)
    assert known.text("first-secret-1 second-secret-2 third-secret-3") == (
        "first-secret-1 <redacted> <redacted>"
    )


def test_log_filter_masks_tracebacks_and_every_logger_through_the_handler(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from monitor import logs

    monkeypatch.setenv("TRACED", "traced-secret-6543")
    value = secrets.SecretRef(env="TRACED").resolve()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        logs.configure("INFO", "json")
        try:
            raise ValueError(f"Illegal header value {('Bearer ' + value + chr(10)).encode()!r}")
        except ValueError:
            logging.getLogger("conea.test.anywhere").exception("failed: %s", value)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    err = capsys.readouterr().err
    assert "failed: <redacted>" in err and "Illegal header value b'Bearer <redacted>" in err
    assert "traced-secret" not in err


@settings(max_examples=150, deadline=None)
@given(
    value=st.text(alphabet=st.characters(codec="utf-8"), min_size=4).filter(
        lambda v: len(v.strip()) >= secrets.MIN_REDACT_LENGTH
    ),
    encode=st.sampled_from(
        [
            lambda v: v,
            lambda v: repr(v)[1:-1],
            lambda v: repr(v.encode())[2:-1],
            lambda v: json.dumps(v)[1:-1],
            lambda v: json.dumps(json.dumps(v)[1:-1])[1:-1],
            lambda v: json.dumps(repr(v)[1:-1])[1:-1],
            lambda v: quote(v, safe=""),
            lambda v: quote(v),
            lambda v: quote_plus(v),
            lambda v: f" {v.strip()}\n",
        ]
    ),
)
def test_every_form_of_any_value_is_masked(value: str, encode: Callable[[str], str]) -> None:
    masked = secrets.Redactor([value]).text(encode(value))
    assert masked.strip() == "<redacted>"  # whitespace around it may stay
