"""Alembic environment for the vault: always run programmatically by `keyvault.db` on a live connection."""

from __future__ import annotations

from alembic import context

from keyvault.schema import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("keyvault migrations run through keyvault.db.upgrade(), which passes a connection")

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
