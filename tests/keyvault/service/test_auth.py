"""Token store and login limiter of the service, with a frozen clock (no server needed)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from keyvault.service.auth import MAX_TOKENS_PER_USER, TOKEN_PREFIX, LoginLimiter, TokenStore
from keyvault.service.errors import LoginLocked, TokenError
from tests.keyvault.support import FakeClock


def test_tokens_are_random_hashed_and_expire_at_their_ttl() -> None:
    clock = FakeClock()
    store = TokenStore(timedelta(minutes=5))
    token, expires = store.issue("olga", clock())
    assert token.startswith(TOKEN_PREFIX) and len(token) > 40 and expires == clock() + timedelta(minutes=5)
    assert token not in repr(store.__dict__)  # only its SHA-256 is kept
    assert store.resolve(token, clock()).user == "olga"
    clock.advance(timedelta(minutes=5))
    with pytest.raises(TokenError, match="expired or revoked"):
        store.resolve(token, clock())
    with pytest.raises(TokenError, match="not logged in"):
        store.resolve(None, clock())


def test_revocation_and_the_per_user_cap() -> None:
    clock = FakeClock()
    store = TokenStore()
    tokens = []
    for _ in range(MAX_TOKENS_PER_USER + 3):
        tokens.append(store.issue("ivan", clock())[0])
        clock.advance(timedelta(seconds=1))
    other, _ = store.issue("olga", clock())
    for old in tokens[:3]:  # the oldest were dropped
        with pytest.raises(TokenError):
            store.resolve(old, clock())
    assert store.resolve(tokens[-1], clock()).user == "ivan"
    assert store.revoke_user("ivan") == MAX_TOKENS_PER_USER
    assert store.revoke(other) is True and store.revoke(other) is False


def test_lockout_after_consecutive_failures_ends_after_its_period() -> None:
    clock = FakeClock()
    limiter = LoginLimiter(max_failures=3, lockout=timedelta(minutes=10))
    for _ in range(2):
        limiter.failed("admin", clock())
    limiter.succeeded("admin")  # a success resets the count
    for _ in range(2):
        limiter.failed("admin", clock())
    limiter.check("admin", clock())
    limiter.failed("admin", clock())
    with pytest.raises(LoginLocked, match="too many failed logins for admin"):
        limiter.check("admin", clock())
    limiter.check("olga", clock())  # names are locked one by one
    clock.advance(timedelta(minutes=10))
    limiter.check("admin", clock())
    limiter.failed("admin", clock())  # a failure after the lockout starts a new count
    limiter.check("admin", clock())
