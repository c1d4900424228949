"""Where the vault lives and how to reach it: URL resolution, engines, Alembic upgrade, revision check.

A vault URL is a SQLAlchemy URL (``sqlite:///path``, ``postgresql+psycopg://user@host/db``) or a bare
file path, which means SQLite. Without one, ``IFADIT_VAULT`` is used, then a SQLite file under the
user's data directory. SQLite connections run in WAL mode with foreign keys on, a busy timeout, and
``BEGIN IMMEDIATE`` for every transaction, so concurrent writers queue instead of failing mid-way.

A SQLite vault file holds every keyslot, so it is created owner-only (0600, its new folder 0700) before
SQLite first opens it; SQLite gives its ``-wal``, ``-shm`` and ``-journal`` files the database file's mode.
An existing file readable by others is tightened to 0600 when it is opened: any local account that could
copy it could guess passphrases offline.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from platformdirs import user_data_dir
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from keyvault.errors import VaultNotFound, VaultSchemaError

ENV_VAR = "IFADIT_VAULT"
DEFAULT_FILENAME = "vault.sqlite3"
BUSY_TIMEOUT_MS = 30_000  # how long a SQLite writer waits for another one before failing
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VAULT_TABLE = "ifadit_vault"
FILE_MODE = 0o600  # SQLite vault files (and, through SQLite, their WAL, shared-memory and journal files)
FOLDER_MODE = 0o700  # a folder created to hold a new vault file
SIDECAR_SUFFIXES = ("-wal", "-shm", "-journal")  # files SQLite keeps beside the database


def default_url() -> str:
    """SQLite file under the user's data directory (e.g. ~/.local/share/ifadit/vault.sqlite3)."""
    return f"sqlite:///{Path(user_data_dir('ifadit')) / DEFAULT_FILENAME}"


def resolve_url(url: str | None = None) -> str:
    """The explicit URL, else ``IFADIT_VAULT``, else ``default_url()``; a bare path becomes a SQLite URL."""
    chosen = url or os.environ.get(ENV_VAR) or default_url()
    if "://" not in chosen:
        chosen = f"sqlite:///{Path(chosen).expanduser().resolve()}"
    return chosen


def display_url(url: str) -> str:
    """The URL with any password masked, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL, or None for other back ends (and in-memory SQLite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def is_sqlite(engine: Engine) -> bool:
    """True when the engine talks to SQLite."""
    return engine.dialect.name == "sqlite"


def make_engine(url: str, *, create: bool = False) -> Engine:
    """An engine for ``url``; for a SQLite file that does not exist, raise ``VaultNotFound`` unless ``create``."""
    path = sqlite_path(url)
    if path is not None:
        if create:
            path.parent.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
            create_private_file(path)
        elif not path.is_file():
            raise VaultNotFound(f"no vault at {path}", hint="run `ifadit vault init` or pass --vault")
        restrict_mode(path)
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True)


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 whatever the umask (an existing file is left to ``restrict_mode``)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    os.close(fd)


def restrict_mode(path: Path) -> None:
    """Take group and other permissions off the vault file and SQLite's files beside it (owner's files only)."""
    for candidate in (path, *(path.with_name(path.name + suffix) for suffix in SIDECAR_SUFFIXES)):
        try:
            status = candidate.stat()
        except FileNotFoundError:
            continue
        if status.st_mode & 0o077 and status.st_uid == os.geteuid():
            os.chmod(candidate, FILE_MODE)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (below)
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The newest schema revision this code knows."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None, "keyvault ships at least one migration"
    return head


def known_revisions() -> set[str]:
    """Every schema revision this code can migrate from."""
    return {script.revision for script in ScriptDirectory.from_config(_alembic_config()).walk_revisions()}


def current_revision(engine: Engine) -> str | None:
    """The schema revision stamped in the database, or None when it has none."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest revision (creates every table on an empty database)."""
    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def check_revision(engine: Engine, url: str) -> None:
    """Refuse a database that is not an ifadit vault, or whose schema is older or newer than this code."""
    where = display_url(url)
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
            tables = set(inspect(connection).get_table_names())
    except SQLAlchemyError as exc:
        raise VaultSchemaError(
            f"{where} is not a readable ifadit vault ({type(getattr(exc, 'orig', None) or exc).__name__})",
            hint="check --vault / IFADIT_VAULT",
        ) from None
    if not tables:
        raise VaultNotFound(f"no vault at {where}", hint="run `ifadit vault init` or pass --vault")
    if VAULT_TABLE not in tables:
        raise VaultSchemaError(f"{where} is not an ifadit vault (it has other tables)", hint="check --vault")
    head = head_revision()
    if current == head:
        return
    if current is None:
        raise VaultSchemaError(
            f"{where} has vault tables but no schema revision", hint="restore it from a backup"
        )
    if current in known_revisions():
        raise VaultSchemaError(
            f"{where} has schema revision {current}, older than this code's {head}",
            hint="run `ifadit vault upgrade` (back up the database first)",
        )
    raise VaultSchemaError(
        f"{where} has schema revision {current}, unknown to this code (newest known: {head})",
        hint="it was written by a newer ifadit: upgrade ifadit",
    )
