"""Fixtures for the pipeline tests: the vault fixtures of tests/keyvault (SQLite file or fresh PostgreSQL schema)."""

from tests.keyvault.support import vault, vault_url  # noqa: F401
