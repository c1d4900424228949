"""Service mode: how a service-held KEK is kept (Shamir shares or an HSM) and per-user login verifiers.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from keyvault.schema import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "service_seal",
        sa.Column("vault_id", sa.String(64), sa.ForeignKey("ifadit_vault.id"), primary_key=True),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("share_count", sa.Integer(), nullable=False),
        sa.Column("hsm_key_label", sa.String(128), nullable=True),
        sa.Column("hsm_wrapped_kek", sa.LargeBinary(), nullable=True),
        sa.Column("created", UTCDateTime(), nullable=False),
    )
    user_fk = sa.ForeignKey("users.id", ondelete="CASCADE")  # one verifier per user, gone with the user
    op.create_table(
        "login_verifiers",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.Integer(), user_fk, nullable=False, unique=True),
        sa.Column("kdf", sa.JSON(), nullable=False),
        sa.Column("verifier", sa.LargeBinary(), nullable=False),
        sa.Column("created", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("login_verifiers")
    op.drop_table("service_seal")
