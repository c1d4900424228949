"""SQLAlchemy 2 declarative models of the vault database.

Nothing here is secret in clear: key material, the KEK and the audit signing key are stored only as
AES-256-GCM blobs (``keyvault.envelope.seal``). Times are timezone-aware UTC in Python and naive UTC in
the database (SQLite has no time zones). The Alembic migration ``0001_initial`` creates exactly these
tables and each later migration in ``keyvault/migrations/versions`` adds its change; a change here needs a
new migration.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ROLES = ("admin", "operator", "investigator", "approver", "auditor")
KEY_STATES = ("active", "suspended", "revoked", "pending-destroy", "destroyed")
VERSION_STATES = ("active", "superseded", "revoked", "destroyed")  # superseded: restore-only after a rotation
RESTORE_MODES = ("exact", "model")  # open the sealed originals, or run the model backwards
ADMIN_ACTION_STATES = ("pending", "approved", "denied", "used")  # keyvault.admin_actions
DEFAULT_APPROVAL_TTL_S = 24 * 3600
DEFAULT_UNLOCK_DELAY_MS = 1000  # pause after a failed unlock, slowing online passphrase guessing


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python, naive UTC in the database; refuses naive input."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("datetimes stored in the vault must be timezone-aware")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    """Declarative base of every vault table."""


class VaultRow(Base):
    """The single row naming this vault, its audit key pair and its policy."""

    __tablename__ = "ifadit_vault"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # random hex; bound into every AAD
    created: Mapped[datetime] = mapped_column(UTCDateTime())
    audit_public_key: Mapped[bytes] = mapped_column(LargeBinary)  # raw Ed25519, 32 bytes
    audit_signing_key_sealed: Mapped[bytes] = mapped_column(LargeBinary)  # sealed under the KEK
    require_approval: Mapped[bool] = mapped_column(Boolean, default=True)  # restores need an approver
    approval_ttl_s: Mapped[int] = mapped_column(Integer, default=DEFAULT_APPROVAL_TTL_S)  # seconds
    approvals_required: Mapped[int] = mapped_column(Integer, default=1)  # distinct approvers per request
    unlock_delay_ms: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_UNLOCK_DELAY_MS
    )  # after a failed unlock
    tag: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # keyvault.integrity (NULL: legacy)


class UserRow(Base):
    """A person who unlocks the vault; ``roles`` is a comma-separated, sorted subset of ``ROLES``."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    roles: Mapped[str] = mapped_column(String(256))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str | None] = mapped_column(
        String(128), nullable=True
    )  # None: the first admin, or older
    tag: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # keyvault.integrity (NULL: legacy)


class KeyslotRow(Base):
    """The vault KEK wrapped under one user's passphrase-derived key (Argon2id parameters beside it)."""

    __tablename__ = "keyslots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    kdf: Mapped[dict[str, Any]] = mapped_column(JSON)  # KdfParams.to_dict()
    wrapped_kek: Mapped[bytes] = mapped_column(LargeBinary)
    created: Mapped[datetime] = mapped_column(UTCDateTime())


class KeyRow(Base):
    """An anonymization key (all its versions share the handle, case and lifecycle state)."""

    __tablename__ = "keys"

    handle: Mapped[str] = mapped_column(String(64), primary_key=True)  # kh_ + random hex
    case_id: Mapped[str] = mapped_column(String(256), index=True)
    purpose: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))  # one of KEY_STATES
    expires: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(128))
    tag: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # keyvault.integrity (NULL: legacy)


class KeyVersionRow(Base):
    """One version of a key; ``material_sealed`` is NULL once destroyed (the row stays as a tombstone)."""

    __tablename__ = "key_versions"
    __table_args__ = (UniqueConstraint("key_handle", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_handle: Mapped[str] = mapped_column(ForeignKey("keys.handle"), index=True)
    version: Mapped[int] = mapped_column(Integer)  # 1, 2, ...
    material_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    state: Mapped[str] = mapped_column(String(16))  # one of VERSION_STATES
    created: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # when the material was erased; while the key is pending-destroy, when it will be (keyvault.keys.destroy)
    destroyed: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    tag: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # keyvault.integrity (NULL: legacy)


class RestoreRequestRow(Base):
    """An investigator's request to restore a batch of inputs (one file or a whole case) under one case."""

    __tablename__ = "restore_requests"

    handle: Mapped[str] = mapped_column(String(64), primary_key=True)  # rq_ + random hex
    requester: Mapped[str] = mapped_column(String(128))
    case_id: Mapped[str] = mapped_column(String(256), index=True)
    reason: Mapped[str] = mapped_column(Text)
    input_digest: Mapped[str] = mapped_column(String(128))  # SHA-256 hex over the inputs' SHA-256s
    key_handle: Mapped[str | None] = mapped_column(ForeignKey("keys.handle"), nullable=True)
    state: Mapped[str] = mapped_column(String(16))  # one of REQUEST_STATES
    created: Mapped[datetime] = mapped_column(UTCDateTime())
    mode: Mapped[str | None] = mapped_column(
        String(8), nullable=True
    )  # RESTORE_MODES; None: filed before 0002
    files: Mapped[list[dict[str, str]] | None] = mapped_column(JSON, nullable=True)  # [{name, sha256}]
    closed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)  # who denied or cancelled it
    closed_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    tag: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # keyvault.integrity (NULL: legacy)


class ApprovalRow(Base):
    """An approver's consent to one request, its inputs' digest and its mode: single use, valid until ``expires``."""

    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_handle: Mapped[str] = mapped_column(ForeignKey("restore_requests.handle"), index=True)
    approver: Mapped[str] = mapped_column(String(128))
    created: Mapped[datetime] = mapped_column(UTCDateTime())
    expires: Mapped[datetime] = mapped_column(UTCDateTime())
    used: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    input_digest: Mapped[str | None] = mapped_column(String(128), nullable=True)  # None: given before 0002
    mode: Mapped[str | None] = mapped_column(String(8), nullable=True)
    tag: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # keyvault.integrity (NULL: legacy)


class AdminActionRow(Base):
    """A security-relevant admin action filed under the two-person rule (``keyvault.admin_actions``).

    ``params`` is the canonical JSON of exactly what will be done; a different admin than ``filer``
    approves it, then the filer runs it once (``state`` used) before ``expires``.
    """

    __tablename__ = "admin_actions"

    handle: Mapped[str] = mapped_column(String(64), primary_key=True)  # aa_ + random hex
    kind: Mapped[str] = mapped_column(String(32))  # keyvault.admin_actions.KINDS
    params: Mapped[str] = mapped_column(Text)  # canonical JSON
    filer: Mapped[str] = mapped_column(String(128))
    created: Mapped[datetime] = mapped_column(UTCDateTime())
    expires: Mapped[datetime] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(16))  # one of ADMIN_ACTION_STATES
    decided_by: Mapped[str | None] = mapped_column(String(128), nullable=True)  # who approved or denied it
    decided: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    tag: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # keyvault.integrity


class AuditEntryRow(Base):
    """One audit entry as its canonical bytes (the signed and hashed form) plus indexed copies for queries."""

    __tablename__ = "audit_entries"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)  # 0, 1, 2, ... no gaps
    canonical: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary)  # RFC 6962 SHA-256(0x00 || canonical)
    case_id: Mapped[str | None] = mapped_column(String(256), index=True, nullable=True)


class TreeHeadRow(Base):
    """A signed checkpoint of the audit Merkle tree."""

    __tablename__ = "tree_heads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    size: Mapped[int] = mapped_column(Integer, index=True)
    root: Mapped[bytes] = mapped_column(LargeBinary)
    time: Mapped[str] = mapped_column(String(32))  # UTC ISO 'Z', exactly as signed
    signature: Mapped[bytes] = mapped_column(LargeBinary)


class ServiceSealRow(Base):
    """Present only in a service-mode vault: how its KEK is held, since no user keyslot wraps it.

    ``mode`` "shamir": the KEK was split into ``share_count`` Shamir shares, ``threshold`` of which
    rebuild it (the shares were printed once at init; nothing of them is stored). ``mode`` "hsm": the
    KEK is stored here encrypted by an AES key that never leaves the HSM (``hsm_wrapped_kek``). Either
    way a rebuilt KEK is checked by opening the audit signing key sealed under it.
    """

    __tablename__ = "service_seal"

    vault_id: Mapped[str] = mapped_column(ForeignKey("ifadit_vault.id"), primary_key=True)
    mode: Mapped[str] = mapped_column(String(16))  # "shamir" | "hsm"
    threshold: Mapped[int] = mapped_column(Integer)  # shares needed (1 for hsm)
    share_count: Mapped[int] = mapped_column(Integer)  # shares printed at init (0 for hsm)
    hsm_key_label: Mapped[str | None] = mapped_column(String(128), nullable=True)
    hsm_wrapped_kek: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime())


class VerifierRow(Base):
    """A service-mode user's login verifier: HMAC under a KEK-derived key of Argon2id(passphrase).

    It never unwraps anything, and without the KEK nobody can compute a valid one, so writing this row
    in the database cannot set another user's passphrase.
    """

    __tablename__ = "login_verifiers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    kdf: Mapped[dict[str, Any]] = mapped_column(JSON)  # KdfParams.to_dict()
    verifier: Mapped[bytes] = mapped_column(LargeBinary)  # 32 bytes
    created: Mapped[datetime] = mapped_column(UTCDateTime())
