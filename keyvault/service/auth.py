"""Logins: passphrase → short-lived bearer token; failed-login limits and lockout live here, in the service.

Tokens are 256-bit random strings (``ifs_…``) handed out once; the service keeps only their SHA-256,
the user, and the expiry, in memory: a restart (or a seal) logs everyone out. A token stops working
when it expires, on logout, when an admin revokes its user's tokens, and when its user is disabled
(every action re-reads the user's row). After ``max_failures`` failed logins for one user name in a
row, that name is locked for ``lockout``, whatever the passphrase: an online guesser gets a few tries
per lockout period, and the lockout does not tell whether the name exists. Logins are audited.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from keyvault import ledger
from keyvault.schema import VaultRow
from keyvault.service.credentials import check_passphrase
from keyvault.service.errors import LoginLocked, TokenError
from keyvault.service.state import ServiceState
from keyvault.vault import AUTH_FAILED, USER_NAME, admit

TOKEN_PREFIX = "ifs_"
DEFAULT_TOKEN_TTL = timedelta(hours=1)
DEFAULT_MAX_FAILURES = 5
DEFAULT_LOCKOUT = timedelta(minutes=15)
MAX_TRACKED_NAMES = 10_000  # bound on the failure table (oldest entries dropped first)
MAX_TOKENS_PER_USER = 32  # a user's oldest tokens are dropped beyond this (bounds the store)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenRecord:
    """What the service knows of a token (never the token itself)."""

    user: str
    created: datetime
    expires: datetime


class TokenStore:
    """Hashed tokens in memory with their user and expiry."""

    def __init__(self, ttl: timedelta = DEFAULT_TOKEN_TTL) -> None:
        if ttl <= timedelta(0):
            raise ValueError("a token lifetime must be positive")
        self.ttl = ttl
        self._records: dict[str, TokenRecord] = {}
        self._lock = threading.Lock()

    def issue(self, user: str, now: datetime) -> tuple[str, datetime]:
        """A new token for ``user`` and its expiry."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = TokenRecord(user=user, created=now, expires=now + self.ttl)
        with self._lock:
            self._records = {k: r for k, r in self._records.items() if r.expires > now}
            mine = sorted((r.created, k) for k, r in self._records.items() if r.user == user)
            for _created, key in mine[: max(0, len(mine) - MAX_TOKENS_PER_USER + 1)]:
                del self._records[key]
            self._records[_digest(token)] = record
        return token, record.expires

    def resolve(self, token: str | None, now: datetime) -> TokenRecord:
        """The token's record; ``TokenError`` for none, unknown, expired or revoked."""
        if not token:
            raise TokenError("not logged in", hint="run `ifadit login --vault URL --user NAME`")
        with self._lock:
            record = self._records.get(_digest(token))
            if record is not None and record.expires <= now:
                del self._records[_digest(token)]
                record = None
        if record is None:
            raise TokenError(
                "token unknown, expired or revoked", hint="log in again: `ifadit login --vault URL`"
            )
        return record

    def revoke(self, token: str) -> bool:
        """Forget one token; True when it existed."""
        with self._lock:
            return self._records.pop(_digest(token), None) is not None

    def revoke_user(self, user: str) -> int:
        """Forget every token of ``user``; how many there were."""
        with self._lock:
            doomed = [k for k, r in self._records.items() if r.user == user]
            for key in doomed:
                del self._records[key]
        return len(doomed)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()


class LoginLimiter:
    """Consecutive failed logins per user name, and the lockout they trigger."""

    def __init__(
        self, max_failures: int = DEFAULT_MAX_FAILURES, lockout: timedelta = DEFAULT_LOCKOUT
    ) -> None:
        if max_failures < 1 or lockout < timedelta(0):
            raise ValueError("max_failures must be >= 1 and the lockout non-negative")
        self.max_failures = max_failures
        self.lockout = lockout
        self._failures: dict[str, tuple[int, datetime | None]] = {}
        self._lock = threading.Lock()

    def check(self, user: str, now: datetime) -> None:
        """``LoginLocked`` while ``user`` is locked out."""
        with self._lock:
            _count, until = self._failures.get(user, (0, None))
        if until is not None and now < until:
            raise LoginLocked(
                f"too many failed logins for {user}: locked until {until:%Y-%m-%d %H:%M:%S} UTC",
                hint="wait, or ask an admin to check the audit log",
            )

    def failed(self, user: str, now: datetime) -> None:
        with self._lock:
            count, until = self._failures.pop(user, (0, None))
            if until is not None and now >= until:
                count = 0
            count += 1
            self._failures[user] = (count, now + self.lockout if count >= self.max_failures else None)
            while len(self._failures) > MAX_TRACKED_NAMES:
                self._failures.pop(next(iter(self._failures)))

    def succeeded(self, user: str) -> None:
        with self._lock:
            self._failures.pop(user, None)


class Authenticator:
    """Login, token lookup and revocation against one ``ServiceState``."""

    def __init__(
        self, state: ServiceState, tokens: TokenStore | None = None, limiter: LoginLimiter | None = None
    ) -> None:
        self.state = state
        self.tokens = tokens or TokenStore()
        self.limiter = limiter or LoginLimiter()

    def login(self, user: str, passphrase: bytes) -> tuple[str, datetime]:
        """A fresh token for ``user``; one ``AuthenticationError`` for unknown user and wrong passphrase."""
        now = self.state.clock()
        valid_name = USER_NAME.fullmatch(user) is not None
        self.limiter.check(user, now)
        kek = self.state.kek()
        with Session(self.state.engine) as session:
            row = (
                check_passphrase(kek, self.state.vault_id, session, user, passphrase) if valid_name else None
            )
            disabled = row is not None and row.disabled
            vault_row = session.scalars(select(VaultRow)).one()
            refusal = admit(session, kek, vault_row, row)[1] if row is not None else None
        outcome, error = ("ok", None) if row is not None and not disabled else ("failed", AUTH_FAILED)
        if disabled or refusal is not None:
            outcome, error = "refused", str(refusal) if refusal is not None else f"user {user} is disabled"
        with Session(self.state.engine) as session, session.begin():
            ledger.append(
                session,
                now=now,
                actor=user if valid_name else None,
                role=None,
                action="service.login",
                outcome=outcome,
                details={"error": error} if error else {},
            )
        if outcome == "failed":
            self.limiter.failed(user, now)
            raise TokenError(AUTH_FAILED)
        if refusal is not None:
            raise refusal
        if outcome == "refused":
            raise TokenError(f"user {user} is disabled", hint="an admin can add a new user")
        self.limiter.succeeded(user)
        return self.tokens.issue(user, now)

    def user_of(self, token: str | None) -> str:
        """The user a bearer token belongs to (checked against expiry and revocation)."""
        return self.tokens.resolve(token, self.state.clock()).user
