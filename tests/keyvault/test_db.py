"""URL resolution, engine settings, Alembic upgrade and the schema-revision check, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from keyvault import db
from keyvault.errors import VaultNotFound, VaultSchemaError
from keyvault.schema import Base
from keyvault.vault import Vault, open_vault
from tests.keyvault.support import ADMIN, ADMIN_PASS, cheap_kdf


def test_bare_path_means_sqlite(tmp_path: Path) -> None:
    assert db.resolve_url(str(tmp_path / "v.db")) == f"sqlite:///{tmp_path / 'v.db'}"


def test_env_var_then_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("IFADIT_VAULT", "postgresql+psycopg://u@h/db")
    assert db.resolve_url(None) == "postgresql+psycopg://u@h/db"
    assert db.resolve_url("sqlite:///x.db") == "sqlite:///x.db"
    monkeypatch.delenv("IFADIT_VAULT")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert db.resolve_url(None) == f"sqlite:///{tmp_path / 'ifadit' / 'vault.sqlite3'}"


def test_display_url_hides_password() -> None:
    shown = db.display_url("postgresql+psycopg://user:s3cret@host/db")
    assert "s3cret" not in shown and "user" in shown


def test_missing_sqlite_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(VaultNotFound, match="no vault at"):
        db.make_engine(f"sqlite:///{tmp_path / 'absent.db'}")
    assert not (tmp_path / "absent.db").exists()


def test_upgrade_creates_the_schema_of_the_models(vault_url: str) -> None:
    engine = db.make_engine(vault_url, create=True)
    with pytest.raises(VaultNotFound):
        db.check_revision(engine, vault_url)
    db.upgrade(engine)
    db.check_revision(engine, vault_url)
    assert db.current_revision(engine) == db.head_revision() == "0005"
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    db.upgrade(engine)  # idempotent at head
    engine.dispose()


def test_sqlite_pragmas(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'v.db'}"
    engine = db.make_engine(url, create=True)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == db.BUSY_TIMEOUT_MS
    engine.dispose()


def test_database_of_another_application_is_refused(vault_url: str) -> None:
    engine = db.make_engine(vault_url, create=True)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE invoices (id INTEGER PRIMARY KEY)"))
    with pytest.raises(VaultSchemaError, match="is not an ifadit vault"):
        db.check_revision(engine, vault_url)
    engine.dispose()


def test_newer_schema_is_refused(vault_url: str) -> None:
    engine = db.make_engine(vault_url, create=True)
    db.upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(VaultSchemaError, match="revision 9999, unknown to this code"):
        db.check_revision(engine, vault_url)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM alembic_version"))
    with pytest.raises(VaultSchemaError, match="no schema revision"):
        db.check_revision(engine, vault_url)
    engine.dispose()


def test_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 64)
    url = f"sqlite:///{path}"
    with pytest.raises(VaultSchemaError, match="is not a readable ifadit vault"):
        db.check_revision(db.make_engine(url), url)


def test_sqlite_vault_files_are_created_owner_only(tmp_path: Path) -> None:
    """The vault file, its new folder and SQLite's WAL and shared-memory files are 0600 / 0700 under umask 022."""
    path = tmp_path / "new-folder" / "vault.sqlite3"
    previous = os.umask(0o022)
    try:
        vault = Vault.init(str(path), ADMIN, ADMIN_PASS, kdf=cheap_kdf(), unlock_delay=timedelta(0))
        with open_vault(str(path), ADMIN, ADMIN_PASS) as again:  # a second connection while the first is open
            modes = {p.name: os.stat(p).st_mode & 0o777 for p in path.parent.iterdir()}
            assert again.id == vault.id
        vault.close()
    finally:
        os.umask(previous)
    assert {"vault.sqlite3", "vault.sqlite3-wal", "vault.sqlite3-shm"} <= set(modes)
    assert set(modes.values()) == {0o600}, modes
    assert os.stat(path.parent).st_mode & 0o777 == 0o700


def test_an_existing_vault_file_readable_by_others_is_tightened_on_open(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'v.db'}"
    db.make_engine(url, create=True).dispose()
    os.chmod(tmp_path / "v.db", 0o644)
    db.make_engine(url).dispose()
    assert os.stat(tmp_path / "v.db").st_mode & 0o777 == 0o600
