"""Vault test fixtures shared by tests/keyvault and tests/cli: a real SQLite file or a fresh PostgreSQL schema.

PostgreSQL tests use the server at 127.0.0.1:5432 (override with IFADIT_TEST_PG); each test gets its own
schema, dropped afterwards. When the server is unreachable the PostgreSQL cases skip with the reason,
except under CI (CI=true), where they fail.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from keyvault.envelope import KdfParams

PG_URL = os.environ.get("IFADIT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ADMIN = "admin"
ADMIN_PASS = b"correct horse battery staple"
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


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
def vault_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file in tmp_path, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'vault.sqlite3'}"
    else:
        yield from postgres_schema_url()
