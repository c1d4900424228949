"""Audit reads, export and offline verification, inclusion and consistency proofs, and tampering with the table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keyvault import auditor, keys, merkle
from keyvault.errors import AuditVerificationError, IntegrityError, NotFound, PermissionDenied
from keyvault.vault import Vault, open_vault
from keyvault.verify import verify_bundle
from tests.keyvault.support import ADMIN, ADMIN_PASS, add_user, execute, table_rows


def _busy_vault(vault: Vault) -> list[str]:
    handles = [keys.issue(vault, f"C-{i % 3}", "test").handle for i in range(6)]
    keys.rotate(vault, handles[0])
    keys.suspend(vault, handles[1])
    vault.checkpoint()
    keys.revoke(vault, handles[2], reason="done")
    return handles


def _export(vault: Vault, path: Path) -> Path:
    with open_vault(vault.url, ADMIN, ADMIN_PASS) as again:
        again.export_audit(path)
    return path


def _export_tampered(vault: Vault, path: Path) -> Path:
    """Export a log that no longer matches its signed heads: refused to sign, bundle written for the verifier."""
    with (
        open_vault(vault.url, ADMIN, ADMIN_PASS) as again,
        pytest.raises(IntegrityError, match="written anyway"),
    ):
        again.export_audit(path)
    return path


def test_show_filters_by_case_and_needs_a_reading_role(vault: Vault) -> None:
    _busy_vault(vault)
    entries = auditor.entries(vault, case="C-1")
    assert entries and all(e.case_id == "C-1" for e in entries)
    assert [e.seq for e in auditor.entries(vault)] == list(range(1, 11))
    with (
        add_user(vault, "olga", "operator") as olga,
        pytest.raises(PermissionDenied, match="auditor or admin"),
    ):
        auditor.entries(olga)


def test_export_and_verify_offline(vault: Vault, tmp_path: Path) -> None:
    _busy_vault(vault)
    with add_user(vault, "audrey", "auditor") as audrey:
        count = audrey.export_audit(tmp_path / "b.jsonl")
        report = auditor.verify_live(audrey)
    assert count == 12  # 10 + user.add + audit.export
    offline = verify_bundle(tmp_path / "b.jsonl", vault.public_key, strict=True)
    assert offline.entries == offline.signed_size == 12 and offline.tree_heads == 1  # thinned: the newest
    assert report.entries == 13  # the live check exported once more


def test_prove_inclusion_and_consistency(vault: Vault) -> None:
    _busy_vault(vault)
    proof = auditor.prove(vault, 4)  # covered by the head of size 9 signed in _busy_vault
    assert proof.head.size == 9
    vault.checkpoint()
    assert proof.seq == 4 and proof.head.size >= 4
    leaf = merkle.leaf_hash(proof.entry)
    assert merkle.verify_inclusion(leaf, 3, proof.head.size, list(proof.path), bytes.fromhex(proof.head.root))
    heads = auditor.tree_heads(vault)
    old, new, path = auditor.consistency(vault, heads[0].size)
    assert old.size < new.size and path
    with pytest.raises(NotFound, match="no signed tree head of size 999"):
        auditor.consistency(vault, 999)
    with pytest.raises(NotFound, match="not covered"):
        auditor.prove(vault, 500)


def _rows(vault: Vault) -> list[dict]:
    return sorted(table_rows(vault.url, "audit_entries"), key=lambda r: r["seq"])


def test_edited_entry_is_located(vault: Vault, tmp_path: Path) -> None:
    _busy_vault(vault)
    row = _rows(vault)[4]
    edited = row["canonical"].replace(b'"outcome":"ok"', b'"outcome":"failed"')
    execute(vault.url, "UPDATE audit_entries SET canonical = :c WHERE seq = :s", c=edited, s=row["seq"])
    with pytest.raises(AuditVerificationError) as caught:
        verify_bundle(_export(vault, tmp_path / "b.jsonl"), vault.public_key)
    assert caught.value.seq == 5  # a signed range or the entry itself


def test_edited_entry_with_recomputed_hashes_is_caught_by_the_signed_heads(
    vault: Vault, tmp_path: Path
) -> None:
    """An insider who rewrites an entry and every later link still cannot re-sign the tree heads."""
    _busy_vault(vault)
    vault.close()
    rows = _rows(vault)
    rows[2]["canonical"] = rows[2]["canonical"].replace(b'"actor":"admin"', b'"actor":"nobody"')
    previous = rows[1]["leaf_hash"]
    for row in rows[2:]:
        data = json.loads(row["canonical"])
        data["prev_hash"] = bytes(previous).hex()
        row["canonical"] = json.dumps(
            data, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
        previous = merkle.leaf_hash(row["canonical"])
        execute(
            vault.url,
            "UPDATE audit_entries SET canonical = :c, leaf_hash = :h WHERE seq = :s",
            c=row["canonical"],
            h=previous,
            s=row["seq"],
        )
    with pytest.raises(AuditVerificationError) as caught:
        verify_bundle(_export_tampered(vault, tmp_path / "b.jsonl"), vault.public_key)
    assert caught.value.seq is not None and caught.value.seq <= 9


def test_deleted_entry_is_located(vault: Vault, tmp_path: Path) -> None:
    _busy_vault(vault)
    vault.close()
    execute(vault.url, "DELETE FROM audit_entries WHERE seq = 6")
    with pytest.raises(AuditVerificationError) as caught:
        verify_bundle(_export_tampered(vault, tmp_path / "b.jsonl"), vault.public_key)
    assert caught.value.seq == 6


def test_truncated_log_is_detected(vault: Vault, tmp_path: Path) -> None:
    _busy_vault(vault)
    vault.close()
    bundle = _export(vault, tmp_path / "b.jsonl")
    lines = bundle.read_bytes().splitlines(keepends=True)
    entries = [line for line in lines[1:] if not line.startswith(b'{"tree_head"')]
    heads = [line for line in lines[1:] if line.startswith(b'{"tree_head"')]
    (tmp_path / "cut.jsonl").write_bytes(lines[0] + b"".join(entries[:-3]) + b"".join(heads))
    with pytest.raises(AuditVerificationError, match="missing") as caught:
        verify_bundle(tmp_path / "cut.jsonl", vault.public_key)
    assert caught.value.seq == 9


def test_vault_refuses_to_sign_over_rewritten_history(vault: Vault) -> None:
    """Rows rewritten with consistent hashes: the next command is refused before it commits, naming the entry."""
    _busy_vault(vault)
    vault.close()
    rows = _rows(vault)
    execute(vault.url, "DELETE FROM audit_entries WHERE seq = :s", s=rows[-1]["seq"])
    with (
        pytest.raises(IntegrityError, match="audit log entry 10: removed"),
        open_vault(vault.url, ADMIN, ADMIN_PASS) as again,
    ):
        keys.issue(again, "C-9", "after the tamper")  # fail-closed: refused before it commits
    assert _rows(vault)[-1]["seq"] == 9  # nothing took the deleted entry's place
