"""Two-person rule for admin actions (``keyvault.admin_actions``): the ``admin_actions`` table.

Key destruction's pending window needs no column: while a key is ``pending-destroy`` its versions'
``destroyed`` time is when the material will be erased.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "admin_actions",
        sa.Column("handle", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("filer", sa.String(128), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("expires", sa.DateTime(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.String(128), nullable=True),
        sa.Column("decided", sa.DateTime(), nullable=True),
        sa.Column("tag", sa.LargeBinary(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("admin_actions")
