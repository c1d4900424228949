"""Detached signatures by the vault's audit key (manifests) and the reserved audit sequence number."""

from __future__ import annotations

import pytest

from keyvault import ledger
from keyvault.audit import verify_tree_head
from keyvault.vault import Vault, detached_bytes, verify_detached
from tests.keyvault.support import vault, vault_url  # noqa: F401  (fixtures)


def test_detached_signature_verifies_only_for_its_purpose_and_data(vault: Vault) -> None:  # noqa: F811
    signature = vault.sign_detached("manifest", b'{"backend":"blur"}')
    assert verify_detached(vault.public_key, "manifest", b'{"backend":"blur"}', signature)
    assert not verify_detached(vault.public_key, "manifest", b'{"backend":"mask"}', signature)
    assert not verify_detached(vault.public_key, "report", b'{"backend":"blur"}', signature)
    flipped = signature[:-1] + bytes([signature[-1] ^ 1])  # always differs (a constant byte may not)
    assert not verify_detached(vault.public_key, "manifest", b'{"backend":"blur"}', flipped)
    assert not verify_detached(b"\x01" * 32, "manifest", b'{"backend":"blur"}', signature)


def test_detached_signature_never_passes_for_a_tree_head(vault: Vault) -> None:  # noqa: F811
    head = vault.checkpoint()
    forged = type(head)(head.vault_id, head.size, head.root, head.time, vault.sign_detached("manifest", b""))
    assert verify_tree_head(vault.public_key, head)
    assert not verify_tree_head(vault.public_key, forged)
    assert detached_bytes("manifest", b"x").startswith(b"ifadit-detached/1\n")


@pytest.mark.parametrize("purpose", ["", "two\nlines"])
def test_detached_purpose_must_be_one_line(vault: Vault, purpose: str) -> None:  # noqa: F811
    with pytest.raises(ValueError, match="single line"):
        vault.sign_detached(purpose, b"data")


def test_next_seq_is_the_seq_the_action_entry_gets(vault: Vault) -> None:  # noqa: F811
    with vault.action("test.reserve", role="admin") as act:
        reserved = ledger.next_seq(act.session)
    with vault.transaction() as session:
        entries = ledger.entries(session)
    assert entries[-1].seq == reserved and entries[-1].action == "test.reserve"
