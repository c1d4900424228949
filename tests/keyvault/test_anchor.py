"""Externally anchored verification: `verify --since` catches what a bundle alone cannot, and the live check
catches edited index columns; times that go backwards are located.

Real vaults on SQLite and PostgreSQL, tampered with SQL as an insider with database access could.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keyvault import auditor, checkpoint, keys, merkle, note, witness
from keyvault.anchor import bundle_leaves, check_bundle_since, verify_since
from keyvault.audit import chain_next, sign_tree_head, write_bundle
from keyvault.errors import AuditVerificationError, CheckpointError, IntegrityError
from keyvault.vault import Vault
from keyvault.verify import verify_bundle
from tests.keyvault.support import execute, reopened, table_rows


def _issue(vault: Vault, count: int) -> None:
    for index in range(count):
        keys.issue(vault, f"C-{index % 2}", f"purpose {index}")


def _export(vault: Vault, path: Path) -> Path:
    """The bundle a new process exports: the vault that watched the log change refuses (fail-closed)."""
    with reopened(vault) as fresh:
        fresh.export_audit(path)
    return path


def test_deleted_tail_and_heads_pass_plain_verify_but_not_since(vault: Vault, tmp_path: Path) -> None:
    """The issue's row: the newest entries and the tree heads covering them deleted in SQL (checkpoint file too)."""
    _issue(vault, 8)
    kept = auditor.checkpoint(vault)  # what the auditor keeps
    size = checkpoint.open_checkpoint(kept, checkpoint.log_verifier(vault.id, vault.public_key)).size
    execute(vault.url, "DELETE FROM tree_heads WHERE size > :n", n=size - 5)
    execute(vault.url, "DELETE FROM audit_entries WHERE seq > :n", n=size - 5)
    vault.checkpoints.unlink()  # an insider on the vault host reaches this file as well
    with pytest.raises(IntegrityError, match="every action is refused"):
        keys.issue(vault, "C-0", "after the cut")  # the vault that saw the tail refuses to go on
    bundle = _export(vault, tmp_path / "cut.jsonl")
    report = verify_bundle(bundle, vault.public_key)  # plain verify: the bundle is self-consistent
    assert report.entries == size - 4  # the export added its own entry
    with pytest.raises(AuditVerificationError) as caught:
        check_bundle_since(bundle, report, [kept], log_key=vault.public_key)
    assert str(caught.value).startswith(
        f"the bundle has {size - 4} entries but the checkpoint at size {size} covers {size}: history truncated"
    )
    assert caught.value.seq == size - 3


def test_rewritten_history_is_located_between_kept_checkpoints(vault: Vault, tmp_path: Path) -> None:
    """Entries rewritten with recomputed hashes and re-grown: the vault's checkpoint file, kept, locates it."""
    _issue(vault, 3)
    vault.checkpoint()
    _issue(vault, 3)
    vault.checkpoint()
    kept = checkpoint.read_all(vault.checkpoints)
    sizes = [
        checkpoint.open_checkpoint(t, checkpoint.log_verifier(vault.id, vault.public_key)).size for t in kept
    ]
    target = sizes[-2] + 1  # the first entry after the second-newest checkpoint
    rows = sorted(table_rows(vault.url, "audit_entries"), key=lambda r: r["seq"])
    execute(vault.url, "DELETE FROM tree_heads")
    previous = bytes(rows[target - 2]["leaf_hash"])
    for row in rows[target - 1 :]:
        data = json.loads(row["canonical"])
        data["prev_hash"] = previous.hex()
        if row["seq"] == target:
            data["reason"] = "rewritten"
        blob = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        previous = merkle.leaf_hash(blob)
        execute(
            vault.url,
            "UPDATE audit_entries SET canonical = :c, leaf_hash = :h WHERE seq = :s",
            c=blob,
            h=previous,
            s=row["seq"],
        )
    vault.checkpoints.unlink()
    bundle = _export(vault, tmp_path / "rewritten.jsonl")
    report = verify_bundle(bundle, vault.public_key)
    with pytest.raises(
        AuditVerificationError, match=f"not consistent with the checkpoint at size {sizes[-1]}"
    ) as e:
        check_bundle_since(bundle, report, kept)
    assert f"among {target}..{sizes[-1]} rewritten" in str(e.value) or f"entry {target} rewritten" in str(
        e.value
    )
    assert e.value.seq == target


def test_since_accepts_a_grown_log_and_requires_named_witnesses(vault: Vault, tmp_path: Path) -> None:
    _issue(vault, 3)
    kept = auditor.checkpoint(vault)
    w_key = tmp_path / "w.key"
    verifier = witness.keygen(w_key, "lab.example/w1")
    bundle = _export(vault, tmp_path / "b.jsonl")
    log_key = note.Verifier.decode(vault.checkpoint_verifier())
    cosigned = witness.cosign(tmp_path / "w.state", w_key, kept, bundle, now=1_796_000_000, log_key=log_key)
    _issue(vault, 2)
    later = _export(vault, tmp_path / "later.jsonl")
    report = check_bundle_since(later, verify_bundle(later), [cosigned.encode()], witnesses=[verifier])
    assert report.since is not None and report.since.witnesses == ("lab.example/w1",)
    assert "extends 1 kept checkpoint" in report.summary()
    other = note.Verifier("lab.example/w2", note.SIG_COSIGNATURE_V1, bytes(range(32)))
    with pytest.raises(CheckpointError, match="no cosignature by witness lab.example/w2"):
        verify_since(bundle_leaves(later), [cosigned.encode()], witnesses=[other])


def test_live_verify_locates_an_edited_case_id_column(vault: Vault) -> None:
    """`audit show --case` filters on the column; editing it hides an entry, and the live check names the entry."""
    _issue(vault, 4)
    row = next(
        r for r in sorted(table_rows(vault.url, "audit_entries"), key=lambda r: r["seq"]) if r["case_id"]
    )
    execute(vault.url, "UPDATE audit_entries SET case_id = 'x' WHERE seq = :s", s=row["seq"])
    hidden = [e.seq for e in auditor.entries(vault, case=row["case_id"])]
    assert row["seq"] not in hidden
    with pytest.raises(AuditVerificationError) as caught:
        auditor.verify_live(vault)
    assert str(caught.value).startswith(
        f"entry {row['seq']}: case_id column 'x' does not match the entry ('{row['case_id']}')"
    )
    assert caught.value.seq == row["seq"]


def test_live_verify_passes_on_an_untouched_vault(vault: Vault) -> None:
    _issue(vault, 2)
    kept = auditor.checkpoint(vault)
    report = auditor.verify_live(vault, since=[kept])
    assert report.since is not None and report.entries > report.since.newest_size


def test_time_going_backwards_is_located(tmp_path: Path) -> None:
    """Signed entries whose times go backwards (entry moved, or its time edited before signing)."""
    from keyvault import envelope

    private, public = envelope.generate_signing_key()
    times = [f"2026-03-04T05:06:0{s}.000000Z" for s in (1, 2, 3, 2, 5)]
    entries = []
    for moment in times:
        entries.append(
            chain_next(entries[-1] if entries else None, time=moment, action="key.issue", outcome="ok")
        )
    leaves = [e.leaf_hash() for e in entries]
    head = sign_tree_head(private, "v", len(entries), merkle.root(leaves), times[-1])
    write_bundle(tmp_path / "b.jsonl", "v", public, entries, [head])
    for strict in (False, True):
        with pytest.raises(
            AuditVerificationError, match="entry 4: its time .* is earlier than entry 3's"
        ) as caught:
            verify_bundle(tmp_path / "b.jsonl", public, strict=strict)
        assert caught.value.seq == 4
