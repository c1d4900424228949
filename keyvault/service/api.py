"""The vault operations the CLI calls, one interface for a local vault and for the vault service.

``VaultAPI`` lists them; ``local_api.LocalAPI`` runs them on an open ``Vault`` through the library (the
CLI on a local vault, and the service for its authenticated user); ``client.VaultClient`` sends the same
calls over HTTP. A command written against ``VaultAPI`` works both ways. This module holds only the
interface and its argument records (no database code), so a workstation's client stays light. Restore requests are in it (filing
one needs only the files' names and SHA-256s, never key material), and so are admin actions under the
two-person rule (the library enforces it for the acting user, wherever it runs), inclusion and
consistency proofs, and keyed digests (the caller sends a SHA-256, never content). Key use (anonymize,
restore) goes through the service's jobs (``client.VaultClient.run_job``), not through this interface.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self

from keyvault.records import RequestFile

if TYPE_CHECKING:
    from keyvault.audit import AuditEntry, InclusionProof, TreeHead
    from keyvault.records import AdminActionInfo, KeyInfo, Policy, RequestInfo, UserInfo

KEY_VERBS = ("suspend", "resume", "revoke", "destroy")
CLOSE_VERBS = ("deny", "cancel")  # how a restore request is closed: by an approver, by its requester
DECIDE_VERBS = ("approve", "deny")  # how an admin decides a pending admin action (two-person rule)


@dataclass(frozen=True)
class PolicyChange:
    """What `vault policy` changes; a setting left None stays as it is."""

    require_approval: bool | None = None
    approval_ttl: timedelta | None = None
    unlock_delay: timedelta | None = None
    approvals: int | None = None  # the quorum: distinct approvers per restore request


class ClosedOnExit:
    """`with` support for an API object: leaving the block closes it."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@dataclass(frozen=True)
class NewRequest:
    """A restore request to file: the files by name and SHA-256, the mode, and optionally the case's key."""

    case: str
    reason: str
    files: tuple[RequestFile, ...]
    mode: str  # exact | model
    key: str | None = None


class VaultAPI(Protocol):
    """What the admin, key, request and audit commands need from a vault, wherever it runs."""

    @property
    def vault_id(self) -> str: ...
    @property
    def public_key(self) -> bytes: ...

    def add_user(
        self, name: str, roles: list[str], passphrase: bytes, admin_action: str | None = None
    ) -> UserInfo: ...
    def list_users(self) -> list[UserInfo]: ...
    def disable_user(self, name: str, reason: str | None) -> UserInfo: ...
    def policy(self) -> Policy: ...
    def set_policy(self, change: PolicyChange, admin_action: str | None = None) -> Policy: ...
    def issue_key(self, case: str, purpose: str, expires: datetime | None) -> KeyInfo: ...
    def list_keys(self, case: str | None, state: str | None) -> list[KeyInfo]: ...
    def show_key(self, handle: str) -> KeyInfo: ...
    def rotate_key(self, handle: str) -> KeyInfo: ...
    def change_key_state(self, verb: str, handle: str, reason: str | None) -> KeyInfo: ...
    def destroy_key(
        self, handle: str, reason: str, window: timedelta, admin_action: str | None
    ) -> KeyInfo: ...
    def cancel_destroy(self, handle: str, reason: str) -> KeyInfo: ...
    def list_admin_actions(self, state: str | None) -> list[AdminActionInfo]: ...
    def show_admin_action(self, handle: str) -> AdminActionInfo: ...
    def decide_admin_action(self, verb: str, handle: str) -> AdminActionInfo: ...
    def file_request(self, new: NewRequest) -> RequestInfo: ...
    def find_request(self, case: str, input_digest: str, mode: str) -> RequestInfo | None: ...
    def list_requests(self, case: str | None, state: str | None) -> list[RequestInfo]: ...
    def show_request(self, handle: str) -> RequestInfo: ...
    def approve_request(self, handle: str) -> RequestInfo: ...
    def close_request(self, verb: str, handle: str, reason: str) -> RequestInfo: ...
    def audit_entries(self, case: str | None) -> list[AuditEntry]: ...
    def tree_heads(self) -> list[TreeHead]: ...
    def checkpoint(self) -> str: ...
    def prove(self, seq: int) -> InclusionProof: ...
    def consistency(self, old_size: int, new_size: int | None) -> tuple[TreeHead, TreeHead, list[bytes]]: ...
    def keyed_digest(self, sha256_hex: str, files: int) -> str: ...
    def close(self) -> None: ...
    def __enter__(self) -> VaultAPI: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...
