"""The console's session cookie and CSRF tokens: signed, bound to the identity and to the
credential that opened them, and valid for 12 hours."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from monitor.auth import (
    LOOPBACK,
    OPERATOR_TOKEN,
    VIEWER_TOKEN,
    WEBHOOK,
    Authenticator,
    Identity,
    Role,
)
from monitor.settings import Settings
from monitor.ui import session

T0 = 1_800_000_000.0
ALICE = Identity(Role.OPERATOR, "basic:alice")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Credentials(dict[Identity, str]):
    """The fingerprints of the credentials configured now, by identity."""

    def __call__(self, identity: Identity) -> str | None:
        return self.get(identity)


def signer(clock: Clock | None = None, key: str = "k" * 32) -> tuple[session.Signer, Credentials]:
    credentials = Credentials({ALICE: "a1" * 8})
    return session.Signer(key, credentials, clock or Clock()), credentials


def test_a_session_lasts_twelve_hours() -> None:
    clock = Clock()
    signer_, _ = signer(clock)
    cookie = signer_.session(ALICE)
    clock.now = T0 + session.LIFETIME
    assert signer_.read_session(cookie) == ALICE
    clock.now = T0 + session.LIFETIME + 1
    assert signer_.read_session(cookie) is None


def test_a_csrf_token_lasts_twelve_hours_and_names_its_identity() -> None:
    clock = Clock()
    signer_, _ = signer(clock)
    token = signer_.csrf(ALICE)
    assert signer_.csrf_ok(token, ALICE)
    assert not signer_.csrf_ok(token, Identity(Role.OPERATOR, "basic:bob"))
    assert not signer_.csrf_ok(token, Identity(Role.VIEWER, "basic:alice"))
    assert not signer_.csrf_ok(token, None)
    clock.now = T0 + session.LIFETIME + 1
    assert not signer_.csrf_ok(token, ALICE)


def test_neither_passes_for_the_other_nor_under_another_key() -> None:
    signer_, _ = signer()
    cookie, token = signer_.session(ALICE), signer_.csrf(ALICE)
    assert signer_.read_session(token) is None  # a CSRF token is no session
    assert not signer_.csrf_ok(cookie, ALICE)  # and a cookie no CSRF token
    other, _ = signer(key="o" * 32)
    assert other.read_session(cookie) is None and not other.csrf_ok(token, ALICE)
    assert signer_.read_session("x" * (session.MAX_TOKEN_CHARS + 1)) is None


def test_a_session_and_its_csrf_token_end_when_their_credential_changes() -> None:
    signer_, credentials = signer()
    cookie, token = signer_.session(ALICE), signer_.csrf(ALICE)
    assert signer_.read(cookie) == session.Reading(ALICE)
    credentials[ALICE] = "b2" * 8  # the password changed
    assert signer_.read(cookie) == session.Reading(None, ALICE, "a1" * 8)
    assert not signer_.csrf_ok(token, ALICE)
    del credentials[ALICE]  # the user removed
    assert signer_.read(cookie) == session.Reading(None, ALICE, "a1" * 8)
    credentials[ALICE] = "a1" * 8  # the same credential again: the same session
    assert signer_.read(cookie) == session.Reading(ALICE) and signer_.csrf_ok(token, ALICE)


def test_a_cookie_without_a_credential_is_signed_out() -> None:
    """One signed before sessions carried their credential's fingerprint, for example."""
    signer_, _ = signer()
    old = signer_._session().dumps({"role": "operator", "name": "basic:alice", "issued": 1})
    assert signer_.read(old) == session.Reading(None, ALICE, "")


def test_a_signed_out_session_is_logged_once_by_name(caplog: pytest.LogCaptureFixture) -> None:
    class Rt:
        extras: dict[str, object] = {}

    reading = session.Reading(None, ALICE, "a1" * 8)
    with caplog.at_level(logging.INFO, logger="monitor.ui.session"):
        for _ in range(3):
            session.signed_out(Rt(), reading)  # type: ignore[arg-type]
        session.signed_out(Rt(), session.Reading(None, ALICE, "c3" * 8))  # type: ignore[arg-type]
    assert [r.getMessage() for r in caplog.records] == [
        "console session of basic:alice (operator) signed out: the credential that opened "
        "it has changed or been removed since"
    ] * 2


def _auth(tmp_path: Path, operator: str, alice: str, role: str = "operator") -> Authenticator:
    return Authenticator(
        Settings(
            data_dir=tmp_path / "data",
            automation={"api_token": operator},
            access={
                "viewer_token": "viewer-s3cret",
                "basic_auth": [{"username": "alice", "password": alice, "role": role}],
            },
        )
    )


def test_a_fingerprint_names_the_credential_configured_now_never_its_secret(
    tmp_path: Path,
) -> None:
    key = b"k" * 32
    auth = _auth(tmp_path, "operator-s3cret", "alice-s3cret")
    prints = {who: auth.fingerprint(who, key) for who in (OPERATOR_TOKEN, VIEWER_TOKEN, ALICE)}
    assert all(p is not None and len(p) == 16 for p in prints.values())
    assert len(set(prints.values())) == 3
    assert not any(s in str(prints) for s in ("operator-s3cret", "viewer-s3cret", "alice-s3cret"))
    assert auth.fingerprint(ALICE, b"o" * 32) != prints[ALICE]  # keyed
    for nobody in (LOOPBACK, WEBHOOK, Identity(Role.VIEWER, "basic:alice")):
        assert auth.fingerprint(nobody, key) is None

    same = _auth(tmp_path, "operator-s3cret", "alice-s3cret")
    assert {who: same.fingerprint(who, key) for who in prints} == prints
    rotated = _auth(tmp_path, "operator-rotated", "alice-changed")
    assert rotated.fingerprint(OPERATOR_TOKEN, key) != prints[OPERATOR_TOKEN]
    assert rotated.fingerprint(ALICE, key) != prints[ALICE]
    assert rotated.fingerprint(VIEWER_TOKEN, key) == prints[VIEWER_TOKEN]
    demoted = _auth(tmp_path, "operator-s3cret", "alice-s3cret", role="viewer")
    assert demoted.fingerprint(ALICE, key) is None
