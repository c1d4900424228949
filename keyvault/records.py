"""What the vault shows people and the service sends: users, policy, keys, restore requests, admin actions.

Plain records without database code, so that the vault service's client (and every command run against
the service) imports no SQLAlchemy: the library builds them from rows, the client from JSON. With them
`inputs_digest`, the digest by which a restore request and its approvals name the request's files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keyvault.schema import AdminActionRow, UserRow, VaultRow

REQUEST_STATES = ("pending", "approved", "used", "denied", "cancelled")
OPEN_STATES = ("pending", "approved")  # a request that can still be approved, denied, cancelled or used


def inputs_digest(sha256s: Iterable[str]) -> str:
    """The digest a request and its approvals name: SHA-256 hex over the inputs' sorted SHA-256 hex digests."""
    return hashlib.sha256("\n".join(sorted(sha256s)).encode()).hexdigest()


def split_roles(text: str) -> tuple[str, ...]:
    """The roles a user row stores as a sorted comma-separated string (`keyvault.vault.join_roles`)."""
    return tuple(part for part in text.split(",") if part)


@dataclass(frozen=True)
class RequestFile:
    """One input a request lists: its name as the requester gave it, and its SHA-256 hex."""

    name: str
    sha256: str


@dataclass(frozen=True)
class ApprovalInfo:
    """One approval of a request."""

    approver: str
    created: datetime
    expires: datetime
    used: datetime | None
    input_digest: str | None  # the inputs' digest it approved (None: given before approvals named it)
    mode: str | None  # the mode it approved


@dataclass(frozen=True)
class RequestInfo:
    """A restore request, the files it lists and its approvals."""

    handle: str
    requester: str
    case_id: str
    reason: str
    input_digest: str  # `inputs_digest` of the files' SHA-256s
    key_handle: str | None
    state: str  # pending | approved | used | denied | cancelled
    created: datetime
    approvals: tuple[ApprovalInfo, ...]
    mode: str | None = None  # exact | model (None: filed before requests named their mode)
    files: tuple[RequestFile, ...] = ()
    approvals_required: int = 1  # the policy's quorum when the request was read
    approvals_counted: int = 0  # approvals that count toward it now
    closed_by: str | None = None  # who denied or cancelled it
    closed_reason: str | None = None


@dataclass(frozen=True)
class VersionInfo:
    """One key version as shown to people (never the material)."""

    version: int
    state: str  # active | superseded | revoked | destroyed
    created: datetime
    revoked: datetime | None
    destroyed: datetime | None


@dataclass(frozen=True)
class KeyInfo:
    """A key's public facts: handle, case, purpose, state, dates and versions."""

    handle: str
    case_id: str
    purpose: str
    state: str
    created: datetime
    created_by: str
    expires: datetime | None
    versions: tuple[VersionInfo, ...]

    @property
    def current_version(self) -> int:
        """The newest version (the one anonymizing uses)."""
        return self.versions[-1].version


@dataclass(frozen=True)
class UserInfo:
    """A vault user as shown to people (no keyslot data)."""

    name: str
    roles: tuple[str, ...]
    disabled: bool
    created: datetime
    created_by: str | None = None  # the admin who added the account (None: the first admin, or before 0002)

    @classmethod
    def from_row(cls, row: UserRow) -> UserInfo:
        return cls(
            name=row.name,
            roles=split_roles(row.roles),
            disabled=row.disabled,
            created=row.created,
            created_by=row.created_by,
        )


@dataclass(frozen=True)
class Policy:
    """Vault-wide policy: restore approvals and the pause after a failed unlock."""

    require_approval: bool  # a restore needs approvals by other users with the approver role
    approval_ttl: timedelta  # how long an approval stays valid
    unlock_delay: timedelta  # pause after each failed unlock (slows online passphrase guessing)
    approvals: int = 1  # distinct approvers a request needs (quorum T), none of them the requester

    @classmethod
    def from_row(cls, row: VaultRow) -> Policy:
        """The policy stored in the vault row."""
        return cls(
            require_approval=row.require_approval,
            approval_ttl=timedelta(seconds=row.approval_ttl_s),
            unlock_delay=timedelta(milliseconds=row.unlock_delay_ms),
            approvals=row.approvals_required,
        )


@dataclass(frozen=True)
class AdminActionInfo:
    """A filed admin action as shown to people."""

    handle: str
    kind: str
    params: dict[str, Any]
    filer: str
    created: datetime
    expires: datetime
    state: str  # pending | approved | denied | used
    decided_by: str | None
    decided: datetime | None

    @classmethod
    def from_row(cls, row: AdminActionRow) -> AdminActionInfo:
        return cls(
            handle=row.handle,
            kind=row.kind,
            params=json.loads(row.params),
            filer=row.filer,
            created=row.created,
            expires=row.expires,
            state=row.state,
            decided_by=row.decided_by,
            decided=row.decided,
        )
