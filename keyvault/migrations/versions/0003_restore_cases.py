"""Restore cases: requests list their files and mode, approvals name the inputs' digest and the mode, a quorum
of approvers per request, denied and cancelled requests, and who added each user (the two-person rule).

Rows from 0001 keep NULL in the new columns: a request or approval without a mode cannot be used (a new
request is filed), and a user without ``created_by`` was added before the rule could tell.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ifadit_vault") as table:
        table.add_column(sa.Column("approvals_required", sa.Integer(), nullable=False, server_default="1"))
    with op.batch_alter_table("users") as table:
        table.add_column(sa.Column("created_by", sa.String(128), nullable=True))
    with op.batch_alter_table("restore_requests") as table:
        table.add_column(sa.Column("mode", sa.String(8), nullable=True))
        table.add_column(sa.Column("files", sa.JSON(), nullable=True))
        table.add_column(sa.Column("closed_by", sa.String(128), nullable=True))
        table.add_column(sa.Column("closed_reason", sa.Text(), nullable=True))
    with op.batch_alter_table("approvals") as table:
        table.add_column(sa.Column("input_digest", sa.String(128), nullable=True))
        table.add_column(sa.Column("mode", sa.String(8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("approvals") as table:
        table.drop_column("mode")
        table.drop_column("input_digest")
    with op.batch_alter_table("restore_requests") as table:
        for column in ("closed_reason", "closed_by", "files", "mode"):
            table.drop_column(column)
    with op.batch_alter_table("users") as table:
        table.drop_column("created_by")
    with op.batch_alter_table("ifadit_vault") as table:
        table.drop_column("approvals_required")
