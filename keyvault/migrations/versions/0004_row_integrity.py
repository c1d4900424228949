"""Row integrity tags (``keyvault.integrity``): a nullable ``tag`` column on every table of security state.

The migration cannot compute tags (they need the KEK), so upgraded rows keep NULL; the first unlock by an
admin seals the vault in (tags every row, audited as ``vault.seal-in``). After that a NULL tag is refused.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLES = ("ifadit_vault", "users", "keys", "key_versions", "restore_requests", "approvals")


def upgrade() -> None:
    for name in TABLES:
        with op.batch_alter_table(name) as table:
            table.add_column(sa.Column("tag", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    for name in reversed(TABLES):
        with op.batch_alter_table(name) as table:
            table.drop_column("tag")
