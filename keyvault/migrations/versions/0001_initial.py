"""Initial vault schema: vault row, users and keyslots, keys and versions, restore requests and
approvals, audit entries and signed tree heads.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from keyvault.schema import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    _vault_and_users()
    _keys()
    _restore_requests()
    _audit_log()


def _vault_and_users() -> None:
    """The vault row, users and their keyslots."""
    op.create_table(
        "ifadit_vault",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("created", UTCDateTime(), nullable=False),
        sa.Column("audit_public_key", sa.LargeBinary(), nullable=False),
        sa.Column("audit_signing_key_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("require_approval", sa.Boolean(), nullable=False),
        sa.Column("approval_ttl_s", sa.Integer(), nullable=False),
        sa.Column("unlock_delay_ms", sa.Integer(), nullable=False),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("roles", sa.String(256), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "keyslots",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
            unique=True,
        ),
        sa.Column("kdf", sa.JSON(), nullable=False),
        sa.Column("wrapped_kek", sa.LargeBinary(), nullable=False),
        sa.Column("created", UTCDateTime(), nullable=False),
    )


def _keys() -> None:
    """Anonymization keys and their versions."""
    op.create_table(
        "keys",
        sa.Column("handle", sa.String(64), primary_key=True),
        sa.Column("case_id", sa.String(256), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("expires", UTCDateTime(), nullable=True),
        sa.Column("created", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
    )
    op.create_index("ix_keys_case_id", "keys", ["case_id"])
    op.create_table(
        "key_versions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("key_handle", sa.String(64), sa.ForeignKey("keys.handle"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("material_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created", UTCDateTime(), nullable=False),
        sa.Column("revoked", UTCDateTime(), nullable=True),
        sa.Column("destroyed", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("key_handle", "version"),
    )
    op.create_index("ix_key_versions_key_handle", "key_versions", ["key_handle"])


def _restore_requests() -> None:
    """Restore requests and their approvals."""
    op.create_table(
        "restore_requests",
        sa.Column("handle", sa.String(64), primary_key=True),
        sa.Column("requester", sa.String(128), nullable=False),
        sa.Column("case_id", sa.String(256), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("input_digest", sa.String(128), nullable=False),
        sa.Column("key_handle", sa.String(64), sa.ForeignKey("keys.handle"), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_restore_requests_case_id", "restore_requests", ["case_id"])
    op.create_table(
        "approvals",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("request_handle", sa.String(64), sa.ForeignKey("restore_requests.handle"), nullable=False),
        sa.Column("approver", sa.String(128), nullable=False),
        sa.Column("created", UTCDateTime(), nullable=False),
        sa.Column("expires", UTCDateTime(), nullable=False),
        sa.Column("used", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_approvals_request_handle", "approvals", ["request_handle"])


def _audit_log() -> None:
    """Audit entries and signed tree heads."""
    op.create_table(
        "audit_entries",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("canonical", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
        sa.Column("case_id", sa.String(256), nullable=True),
    )
    op.create_index("ix_audit_entries_case_id", "audit_entries", ["case_id"])
    op.create_table(
        "tree_heads",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("time", sa.String(32), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_tree_heads_size", "tree_heads", ["size"])


def downgrade() -> None:
    for table in (
        "tree_heads",
        "audit_entries",
        "approvals",
        "restore_requests",
        "key_versions",
        "keys",
        "keyslots",
        "users",
        "ifadit_vault",
    ):
        op.drop_table(table)
