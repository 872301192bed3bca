"""The console's session cookie and CSRF tokens: signed, bound, and valid for 12 hours."""

from __future__ import annotations

from monitor.auth import Identity, Role
from monitor.ui import session

T0 = 1_800_000_000.0
ALICE = Identity(Role.OPERATOR, "basic:alice")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def test_a_session_lasts_twelve_hours() -> None:
    clock = Clock()
    signer = session.Signer("k" * 32, clock)
    cookie = signer.session(ALICE)
    clock.now = T0 + session.LIFETIME
    assert signer.read_session(cookie) == ALICE
    clock.now = T0 + session.LIFETIME + 1
    assert signer.read_session(cookie) is None


def test_a_csrf_token_lasts_twelve_hours_and_names_its_identity() -> None:
    clock = Clock()
    signer = session.Signer("k" * 32, clock)
    token = signer.csrf(ALICE)
    assert signer.csrf_ok(token, ALICE)
    assert not signer.csrf_ok(token, Identity(Role.OPERATOR, "basic:bob"))
    assert not signer.csrf_ok(token, Identity(Role.VIEWER, "basic:alice"))
    assert not signer.csrf_ok(token, None)
    clock.now = T0 + session.LIFETIME + 1
    assert not signer.csrf_ok(token, ALICE)


def test_neither_passes_for_the_other_nor_under_another_key() -> None:
    signer = session.Signer("k" * 32)
    cookie, token = signer.session(ALICE), signer.csrf(ALICE)
    assert signer.read_session(token) is None  # a CSRF token is no session
    assert not signer.csrf_ok(cookie, ALICE)  # and a cookie no CSRF token
    other = session.Signer("o" * 32)
    assert other.read_session(cookie) is None and not other.csrf_ok(token, ALICE)
    assert signer.read_session("x" * (session.MAX_TOKEN_CHARS + 1)) is None
