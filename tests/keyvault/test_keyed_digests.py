"""keyvault.digests and Vault.keyed_digest: audit entries name original content by a vault-keyed HMAC."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta
from pathlib import Path

import pytest

from keyvault import envelope
from keyvault.audit import AuditEntry
from keyvault.digests import DIGEST_KEY_INFO, MESSAGE_LABEL, digest_key, is_digest, keyed_digest
from keyvault.vault import Vault, open_vault
from tests.keyvault.support import ADMIN, ADMIN_PASS, cheap_kdf

SHA = hashlib.sha256(b"an original photo").hexdigest()


def test_same_content_under_the_same_vault_gives_the_same_keyed_digest(vault: Vault) -> None:
    first = vault.keyed_digest(SHA)
    with open_vault(vault.url, ADMIN, ADMIN_PASS) as again:  # a later unlock derives the same key
        assert again.keyed_digest(SHA) == first
        assert again.keyed_digest(hashlib.sha256(b"another photo").hexdigest()) != first
    assert first.startswith("hmac-sha256:") and len(first) == len("hmac-sha256:") + 64
    assert SHA not in first and is_digest(first)


def test_another_vault_gives_another_digest(vault: Vault, tmp_path: Path) -> None:
    other = Vault.init(
        str(tmp_path / "other.db"), ADMIN, ADMIN_PASS, kdf=cheap_kdf(), unlock_delay=timedelta(0)
    )
    with other:
        assert other.keyed_digest(SHA) != vault.keyed_digest(SHA)


def test_construction_is_hmac_sha256_under_an_hkdf_key_of_the_kek() -> None:
    kek = bytes(range(32))
    key = envelope.hkdf_sha256(kek, info=DIGEST_KEY_INFO + b"\nv_1", length=32)
    assert digest_key(kek, "v_1") == key != digest_key(kek, "v_2")
    expected = hmac.new(key, MESSAGE_LABEL + SHA.encode(), hashlib.sha256).hexdigest()
    assert keyed_digest(key, SHA) == "hmac-sha256:" + expected


@pytest.mark.parametrize("bad", ["", SHA.upper(), SHA[:-1], "sha256:" + SHA])
def test_only_a_sha256_hex_is_keyed(bad: str) -> None:
    with pytest.raises(ValueError, match="64 lower-case hex"):
        keyed_digest(bytes(32), bad)


def test_audit_entries_accept_keyed_digests_and_nothing_looser() -> None:
    fields = {"seq": 1, "time": "2026-12-07T12:00:00.000000Z", "action": "anonymize", "outcome": "ok"}
    keyed = keyed_digest(bytes(32), SHA)
    entry = AuditEntry(**fields, prev_hash="0" * 64, digests={"inputs": keyed, "outputs": SHA})
    assert AuditEntry.from_canonical(entry.canonical_bytes()) == entry
    for bad in ("hmac-sha256:" + SHA[:-2], "hmac-sha256:" + SHA.upper(), "HMAC-SHA256:" + SHA):
        with pytest.raises(ValueError, match="digests"):
            AuditEntry(**fields, prev_hash="0" * 64, digests={"inputs": bad})
