"""Alembic upgrades from the first schema revision to head, one revision at a time, on SQLite and PostgreSQL.

Written against the revision list, so every future migration is walked too; today the first revision is
also the head, and the walk checks that a database stamped at it opens, works and verifies at head.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from keyvault import db, keys
from keyvault.schema import Base
from keyvault.vault import Vault, open_vault
from keyvault.verify import verify_bundle
from tests.keyvault.support import ADMIN, ADMIN_PASS, cheap_kdf


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(db.MIGRATIONS_DIR))
    return config


def _revisions() -> list[str]:
    """Every revision, oldest first."""
    return [
        script.revision for script in reversed(list(ScriptDirectory.from_config(_config()).walk_revisions()))
    ]


def _upgrade_to(url: str, revision: str) -> None:
    engine = db.make_engine(url, create=True)
    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    assert db.current_revision(engine) == revision
    engine.dispose()


def test_revisions_form_one_line_from_the_first_to_head() -> None:
    revisions = _revisions()
    assert revisions[0] == "0001" and revisions[-1] == db.head_revision()
    scripts = ScriptDirectory.from_config(_config())
    assert scripts.get_revision(revisions[0]).down_revision is None
    for older, newer in zip(revisions, revisions[1:], strict=False):
        assert scripts.get_revision(newer).down_revision == older  # no branches


def test_upgrade_from_the_first_revision_to_head(vault_url: str, tmp_path: Path) -> None:
    for revision in _revisions():  # one step at a time, as `ifadit vault upgrade` would over releases
        _upgrade_to(vault_url, revision)
    engine = db.make_engine(vault_url)
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    db.check_revision(engine, vault_url)
    engine.dispose()

    with Vault.init(vault_url, ADMIN, ADMIN_PASS, kdf=cheap_kdf()) as vault:  # the upgraded schema works
        handle = keys.issue(vault, "C-1", "after upgrade").handle
    with open_vault(vault_url, ADMIN, ADMIN_PASS) as vault:
        assert [key.handle for key in keys.list_keys(vault)] == [handle]
        count = vault.export_audit(tmp_path / "bundle.jsonl")
        assert verify_bundle(tmp_path / "bundle.jsonl", vault.public_key, strict=True).entries == count
