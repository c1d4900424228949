"""`ifadit audit show|export|verify|checkpoint` against a vault service (`--vault https://...`).

Hooked into cli/audit.py with one line per command. The auditor's trust does not move to the service:
`audit verify` downloads the bundle and verifies it here, against the pinned key (``--public-key``) and
the checkpoints kept (``--since``), and also asks the service for its own live check (index columns).
"""

from __future__ import annotations

from collections.abc import Sequence

from ifadit_cli.options import VaultArgs
from keyvault import AuditEntry, TreeHead, VerifyReport, auditor, note
from keyvault import checkpoint as checkpoints
from keyvault.excerpt import AuditFilter


def tree_heads(vault_args: VaultArgs) -> list[TreeHead]:
    """The signed tree heads, through the service."""
    with vault_args.client() as client:
        return list(client.tree_heads())


def entries(vault_args: VaultArgs, where: AuditFilter) -> list[AuditEntry]:
    """The entries `where` selects, through the service: the case selects there, the other criteria here."""
    with vault_args.client() as client:
        return [e for e in client.audit_entries(where.case) if where.matches(e)]


def verify_live(
    vault_args: VaultArgs, pinned: bytes | None, kept: Sequence[str], witnesses: Sequence[note.Verifier]
) -> VerifyReport:
    """`audit verify` without a bundle: the service's check, then the downloaded bundle verified here."""
    with vault_args.client() as client:
        client.verify_audit()
        return auditor.verify_export(client.export_audit, pinned or client.public_key, kept, witnesses)


def checkpoint(vault_args: VaultArgs, verifier_key: bool) -> str:
    """`audit checkpoint` through the service: the newest note, or the vault's verifier key."""
    with vault_args.client() as client:
        if verifier_key:
            return checkpoints.log_verifier(client.vault_id, client.public_key).encode() + "\n"
        return client.checkpoint()
