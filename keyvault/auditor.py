"""What an auditor does against a live vault: read entries, verify it, prove inclusion and consistency.

Reads need the auditor or admin role (a refusal is audited); ``keyed_digest`` (any role) recomputes the
keyed digest an entry records for content its caller holds. Exporting a bundle is ``Vault.export_audit``.
Offline checks of the results live in ``keyvault.verify``, which needs no database.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from keyvault import ledger, note
from keyvault.anchor import check_bundle_since
from keyvault.audit import AuditEntry, InclusionProof, TreeHead
from keyvault.excerpt import AuditFilter
from keyvault.schema import ROLES
from keyvault.vault import Vault
from keyvault.verify import VerifyReport, verify_bundle, verify_consistency_between, verify_inclusion_proof

AUDIT_ROLES = ("auditor", "admin")


def entries(vault: Vault, *, case: str | None = None, where: AuditFilter | None = None) -> list[AuditEntry]:
    """Stored entries in sequence order, optionally only one case's and only those ``where`` selects."""
    if where is not None and case is not None:
        raise ValueError("pass the case either as case or inside where, not both")
    wanted = where or AuditFilter(case=case)
    with vault.action("audit.show", role=AUDIT_ROLES, case=wanted.case, record=False) as act:
        return [e for e in ledger.entries(act.session, case_id=wanted.case) if wanted.matches(e)]


def tree_heads(vault: Vault) -> list[TreeHead]:
    """Every signed tree head, oldest first."""
    with vault.action("audit.show", role=AUDIT_ROLES, record=False) as act:
        return ledger.tree_heads(act.session, vault.id)


def verify_live(
    vault: Vault,
    public_key: bytes | None = None,
    *,
    since: Sequence[str] = (),
    witnesses: Sequence[note.Verifier] = (),
) -> VerifyReport:
    """Export to a temporary bundle and verify it as an offline auditor would, then the index columns.

    ``since`` holds checkpoint notes the auditor kept (the log must extend each); ``witnesses`` must
    have cosigned the newest. The database's indexed copies (``case_id``, ``leaf_hash``, ``seq``) are
    checked against each canonical entry, which a bundle cannot show: an edited ``case_id`` hides an
    entry from `audit show --case` without touching what is signed.
    """
    report = verify_export(vault.export_audit, public_key or vault.public_key, since, witnesses)
    with vault.action("audit.verify", role=AUDIT_ROLES, record=False) as act:
        ledger.check_index_columns(act.session)
    return report


def verify_export(
    export: Callable[[Path], object],
    key: bytes,
    since: Sequence[str] = (),
    witnesses: Sequence[note.Verifier] = (),
) -> VerifyReport:
    """`export` the whole log to a temporary bundle and verify it strictly under `key`, and against the
    checkpoints kept (`since`, cosigned by `witnesses`): a local vault's or the vault service's log."""
    with tempfile.TemporaryDirectory(prefix="ifadit-audit-") as folder:
        bundle = Path(folder) / "audit.jsonl"
        export(bundle)
        report = verify_bundle(bundle, key, strict=True)
        if since:
            report = check_bundle_since(bundle, report, since, log_key=key, witnesses=witnesses)
    return report


def checkpoint(vault: Vault) -> str:
    """The vault's newest checkpoint note, signing (and publishing) a fresh one when entries are uncovered."""
    with vault.action("audit.checkpoint", role=AUDIT_ROLES, record=False) as act:
        current = ledger.signed_size(act.session) == ledger.next_seq(act.session) - 1
        head = ledger.latest_head(act.session, vault.id) if current else None
    if head is None:
        head = vault.checkpoint()
    return vault.checkpoint_note(head)


def prove(vault: Vault, seq: int) -> InclusionProof:
    """Inclusion proof of entry ``seq`` under a signed tree head (signs a fresh one when none covers it)."""
    with vault.action("audit.prove", role=AUDIT_ROLES, record=False) as act:
        covered = ledger.signed_size(act.session) >= seq
    if not covered:
        vault.checkpoint()
    with vault.action("audit.prove", role=AUDIT_ROLES, record=False) as act:
        proof = ledger.inclusion(act.session, vault.id, seq)
    verify_inclusion_proof(proof, vault.public_key)
    return proof


def consistency(
    vault: Vault, old_size: int, new_size: int | None = None
) -> tuple[TreeHead, TreeHead, list[bytes]]:
    """Two stored signed heads (``new_size`` defaults to the newest) and the checked proof that one extends the other."""
    with vault.action("audit.consistency", role=AUDIT_ROLES, record=False) as act:
        old = ledger.head_of_size(act.session, vault.id, old_size)
        new = (
            ledger.latest_head(act.session, vault.id)
            if new_size is None
            else ledger.head_of_size(act.session, vault.id, new_size)
        )
        proof = ledger.consistency(act.session, old.size, new.size)
    verify_consistency_between(old, new, proof, vault.public_key)
    return old, new, proof


def keyed_digest(vault: Vault, sha256_hex: str, *, files: int = 1) -> str:
    """The keyed digest (``hmac-sha256:...``) audit entries record for content whose SHA-256 is ``sha256_hex``.

    The caller hashes the content itself (for several files, the SHA-256 of their list in order), so no
    content reaches the vault; ``files`` says how many files that was, for the audit entry. The check is
    audited (``audit.digest``, any role), so who confirmed a file shows.
    """
    if files < 1:
        raise ValueError("name at least one file to digest")
    with vault.action("audit.digest", role=ROLES, details={"files": files}) as act:
        act.digests = {"files": vault.keyed_digest(sha256_hex)}
    return act.digests["files"]
