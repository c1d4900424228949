"""Vault test fixtures shared by tests/keyvault and tests/cli: a real SQLite file or a fresh PostgreSQL schema.

PostgreSQL tests use the server at 127.0.0.1:5432 (override with IFADIT_TEST_PG); each test gets its own
schema, dropped afterwards. When the server is unreachable the PostgreSQL cases skip with the reason,
except under CI (CI=true), where they fail.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from keyvault import integrity
from keyvault.envelope import KdfParams
from keyvault.errors import ApprovalPending
from keyvault.vault import Vault, open_vault

PG_URL = os.environ.get("IFADIT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ADMIN = "admin"
ADMIN_PASS = b"correct horse battery staple"
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
T = TypeVar("T")


def cheap_kdf() -> KdfParams:
    """Argon2id parameters small enough for tests (8 MiB, 1 pass); never the product default."""
    return KdfParams.generate(memory_cost=8192, iterations=1, lanes=1)


def _pg_unreachable() -> str | None:
    try:
        engine = create_engine(PG_URL)
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any failure to connect means "unreachable" here
        return f"PostgreSQL at {PG_URL} unreachable ({type(exc).__name__})"
    return None


def postgres_schema_url() -> Iterator[str]:
    """Create a fresh schema, yield a URL whose search_path is that schema, drop it afterwards."""
    reason = _pg_unreachable()
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    schema = f"t_{secrets.token_hex(6)}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def vault_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """An empty database: a SQLite file in tmp_path, or a fresh PostgreSQL schema.

    The checkpoint file goes beside the SQLite file, and into tmp_path for PostgreSQL (IFADIT_CHECKPOINTS).
    """
    if request.param == "sqlite":
        monkeypatch.delenv("IFADIT_CHECKPOINTS", raising=False)
        yield f"sqlite:///{tmp_path / 'vault.sqlite3'}"
    else:
        monkeypatch.setenv("IFADIT_CHECKPOINTS", f"{tmp_path}{os.sep}")
        yield from postgres_schema_url()


@pytest.fixture
def vault(vault_url: str) -> Iterator[Vault]:
    """A fresh vault (cheap Argon2id, no unlock delay) unlocked as its first admin; closed (and checkpointed) afterwards."""
    opened = Vault.init(vault_url, ADMIN, ADMIN_PASS, kdf=cheap_kdf(), unlock_delay=timedelta(0))
    try:
        yield opened
    finally:
        opened.close()


def reopened(vault: Vault) -> Vault:
    """`vault` unlocked again as its first admin, as a new process would: it has checked none of the tail yet."""
    return open_vault(vault.url, ADMIN, ADMIN_PASS, clock=vault.clock, checkpoints=vault.checkpoints)


def add_user(vault: Vault, name: str, *roles: str, approver: Vault | None = None) -> Vault:
    """Add a user whose passphrase is their name (as bytes) and return the vault unlocked as them.

    With two admins, ``approver`` (another admin) approves the addition (``two_person``).
    """
    from keyvault import access

    def add(action: str | None) -> object:
        return access.add_user(vault, name, list(roles), name.encode(), kdf=cheap_kdf(), admin_action=action)

    if approver is None:
        add(None)
    else:
        two_person(add, approver)
    return open_vault(vault.url, name, name.encode(), clock=vault.clock)


def two_person(call: Callable[[str | None], T], approver: Vault) -> T:
    """Run an admin call under the two-person rule: it files an admin action, ``approver`` approves, it runs."""
    from keyvault import admin_actions

    with pytest.raises(ApprovalPending) as filed:
        call(None)
    match = re.search(r"aa_[0-9a-f]{24}", str(filed.value))
    assert match is not None, str(filed.value)
    admin_actions.approve(approver, match[0])
    return call(match[0])


class FakeClock:
    """A settable UTC clock for expiry tests: call it for the time, ``advance`` to move it."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 15, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def table_rows(url: str, table: str) -> list[dict[str, Any]]:
    """Every row of one vault table, read straight from the database (as a thief or auditor would)."""
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = [dict(row._mapping) for row in connection.execute(text(f"SELECT * FROM {table}"))]
    engine.dispose()
    return rows


def execute(url: str, statement: str, **params: Any) -> None:
    """Run one raw SQL statement against the vault database (to tamper with it, as an insider could)."""
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(statement), params)
    engine.dispose()


def issue_keys_worker(url: str, user: str, passphrase: bytes, count: int, barrier: Any) -> None:
    """Process body for the concurrency tests: unlock, wait for the others, then append ``count`` audited actions.

    Every third action is a refused one (an illegal transition), so refusals race with successes too.
    """
    from keyvault import keys
    from keyvault.errors import KeyStateError

    with open_vault(url, user, passphrase) as vault:
        barrier.wait(timeout=60)
        handle = None
        for index in range(count):
            if handle is not None and index % 3 == 2:
                try:
                    keys.resume(vault, handle)
                except KeyStateError:
                    continue
                raise AssertionError("resuming an active key must be refused")
            handle = keys.issue(vault, f"C-{user}", f"purpose {index}").handle


def append_forever_worker(url: str, user: str, passphrase: bytes, ready: Any) -> None:
    """Process body for the crash test: append audited key issues until killed."""
    from keyvault import keys

    vault = open_vault(url, user, passphrase)
    ready.set()
    while True:
        keys.issue(vault, "C-crash", "until killed")


def retag(vault: Vault) -> None:
    """Tag every protected row again with the vault's row MAC, as sealing in does after an upgrade.

    For tests that write rows as an older schema left them (e.g. NULL mode): the edit stands for a
    migration, not for an insider, so the rows are re-tagged as the first admin unlock would.
    """
    with Session(vault.engine) as session, session.begin():  # no MAC installed: loads are not verified
        integrity.tag_all(session, vault._row_mac)
