"""Threat 3, a stolen vault database without a passphrase: no key material, KEK, signing key or passphrase in it.

The SQLite file (with its WAL) or a pg_dump of the PostgreSQL schema is scanned for every secret in raw,
hex (both cases) and base64 (standard and URL-safe) form.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest

from keyvault import access, keys
from keyvault.vault import Vault
from tests.keyvault.support import ADMIN_PASS, add_user, cheap_kdf


def _forms(secret: bytes) -> list[bytes]:
    return [
        secret,
        secret.hex().encode(),
        secret.hex().upper().encode(),
        base64.b64encode(secret),
        base64.urlsafe_b64encode(secret),
        base64.b64encode(secret).rstrip(b"="),
    ]


def _database_bytes(url: str) -> bytes:
    if url.startswith("sqlite"):
        path = Path(url.removeprefix("sqlite:///"))
        return b"".join(p.read_bytes() for p in sorted(path.parent.glob(path.name + "*")))
    if shutil.which("pg_dump") is None:
        pytest.skip("pg_dump is not installed")
    schema = unquote(url).split("search_path=")[1]
    dump = subprocess.run(
        ["pg_dump", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-n", schema, "--inserts"],
        capture_output=True,
        check=True,
    )
    return dump.stdout


def test_database_holds_no_secret(vault: Vault) -> None:
    handles = [keys.issue(vault, f"C-{i}", "test").handle for i in range(3)]
    keys.rotate(vault, handles[0])
    access.set_policy(vault, require_approval=False)
    access.add_user(vault, "olga", ["operator", "investigator"], b"olga-secret-passphrase", kdf=cheap_kdf())
    with add_user(vault, "ivan", "investigator") as ivan:
        materials = [keys.unseal_for_use(ivan, h, purpose="restore").material for h in handles]
        materials.append(keys.unseal_for_use(ivan, handles[0], purpose="restore", version=1).material)
    secrets = [
        *materials,
        vault._kek.reveal(),
        vault._signing_key.reveal(),
        ADMIN_PASS,
        b"olga-secret-passphrase",
    ]
    vault.close()
    stolen = _database_bytes(vault.url)
    assert vault.id.encode() in stolen or vault.id.upper().encode() in stolen  # the scan sees the data
    for secret in secrets:
        for form in _forms(secret):
            assert form not in stolen, "a secret is readable in the stolen database"
