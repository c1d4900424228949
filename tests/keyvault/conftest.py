"""Fixtures for the vault tests (defined in tests/keyvault/support.py so tests/cli can share them)."""

from tests.keyvault.support import vault, vault_url  # noqa: F401
