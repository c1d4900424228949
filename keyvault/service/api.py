"""The vault operations the CLI calls, one interface for a local vault and for the vault service.

``VaultAPI`` lists them; ``LocalAPI`` runs them on an open ``Vault`` through the library (the CLI on a
local vault, and the service for its authenticated user); ``client.VaultClient`` sends the same calls
over HTTP. A command written against ``VaultAPI`` works both ways. Restore requests are in it (filing
one needs only the files' names and SHA-256s, never key material), and so are admin actions under the
two-person rule (the library enforces it for the acting user, wherever it runs), inclusion and
consistency proofs, and keyed digests (the caller sends a SHA-256, never content). Key use (anonymize,
restore) is not yet: over the service those commands stop with ``NotRouted``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Protocol, Self

from keyvault import access, admin_actions, auditor, keys
from keyvault.access import RequestFile, RequestInfo
from keyvault.admin_actions import AdminActionInfo
from keyvault.audit import AuditEntry, InclusionProof, TreeHead
from keyvault.keys import KeyInfo
from keyvault.vault import Policy, UserInfo, Vault

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


class LocalAPI(ClosedOnExit):
    """``VaultAPI`` on an open vault: each call is the library function the command used to call."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault

    @property
    def vault_id(self) -> str:
        return self.vault.id

    @property
    def public_key(self) -> bytes:
        return self.vault.public_key

    def add_user(
        self, name: str, roles: list[str], passphrase: bytes, admin_action: str | None = None
    ) -> UserInfo:
        return access.add_user(self.vault, name, roles, passphrase, admin_action=admin_action)

    def list_users(self) -> list[UserInfo]:
        return access.list_users(self.vault)

    def disable_user(self, name: str, reason: str | None) -> UserInfo:
        return access.disable_user(self.vault, name, reason=reason)

    def policy(self) -> Policy:
        return self.vault.policy()

    def set_policy(self, change: PolicyChange, admin_action: str | None = None) -> Policy:
        return access.set_policy(self.vault, **dataclasses.asdict(change), admin_action=admin_action)

    def issue_key(self, case: str, purpose: str, expires: datetime | None) -> KeyInfo:
        return keys.issue(self.vault, case, purpose, expires=expires)

    def list_keys(self, case: str | None, state: str | None) -> list[KeyInfo]:
        return keys.list_keys(self.vault, case=case, state=state)

    def show_key(self, handle: str) -> KeyInfo:
        return keys.show(self.vault, handle)

    def rotate_key(self, handle: str) -> KeyInfo:
        return keys.rotate(self.vault, handle)

    def change_key_state(self, verb: str, handle: str, reason: str | None) -> KeyInfo:
        if verb not in KEY_VERBS:
            raise ValueError(f"unknown key verb {verb!r}; choose from {', '.join(KEY_VERBS)}")
        result: KeyInfo = getattr(keys, verb)(self.vault, handle, reason=reason)
        return result

    def destroy_key(self, handle: str, reason: str, window: timedelta, admin_action: str | None) -> KeyInfo:
        return keys.destroy(self.vault, handle, reason, window=window, admin_action=admin_action)

    def cancel_destroy(self, handle: str, reason: str) -> KeyInfo:
        return keys.cancel_destroy(self.vault, handle, reason)

    def list_admin_actions(self, state: str | None) -> list[AdminActionInfo]:
        return admin_actions.list_actions(self.vault, state=state)

    def show_admin_action(self, handle: str) -> AdminActionInfo:
        return admin_actions.show(self.vault, handle)

    def decide_admin_action(self, verb: str, handle: str) -> AdminActionInfo:
        if verb not in DECIDE_VERBS:
            raise ValueError(f"unknown admin-action verb {verb!r}; choose from {', '.join(DECIDE_VERBS)}")
        deciding = admin_actions.approve if verb == "approve" else admin_actions.deny
        return deciding(self.vault, handle)

    def file_request(self, new: NewRequest) -> RequestInfo:
        return access.request_restore(
            self.vault, case=new.case, reason=new.reason, files=new.files, mode=new.mode, key=new.key
        )

    def find_request(self, case: str, input_digest: str, mode: str) -> RequestInfo | None:
        return access.find_request(self.vault, case=case, input_digest=input_digest, mode=mode)

    def list_requests(self, case: str | None, state: str | None) -> list[RequestInfo]:
        return access.list_requests(self.vault, case=case, state=state)

    def show_request(self, handle: str) -> RequestInfo:
        return access.show_request(self.vault, handle)

    def approve_request(self, handle: str) -> RequestInfo:
        return access.approve(self.vault, handle)

    def close_request(self, verb: str, handle: str, reason: str) -> RequestInfo:
        if verb not in CLOSE_VERBS:
            raise ValueError(f"unknown request verb {verb!r}; choose from {', '.join(CLOSE_VERBS)}")
        closing = access.deny if verb == "deny" else access.cancel
        return closing(self.vault, handle, reason)

    def audit_entries(self, case: str | None) -> list[AuditEntry]:
        return auditor.entries(self.vault, case=case)

    def tree_heads(self) -> list[TreeHead]:
        return auditor.tree_heads(self.vault)

    def checkpoint(self) -> str:
        return auditor.checkpoint(self.vault)

    def prove(self, seq: int) -> InclusionProof:
        return auditor.prove(self.vault, seq)

    def consistency(self, old_size: int, new_size: int | None) -> tuple[TreeHead, TreeHead, list[bytes]]:
        return auditor.consistency(self.vault, old_size, new_size)

    def keyed_digest(self, sha256_hex: str, files: int) -> str:
        return auditor.keyed_digest(self.vault, sha256_hex, files=files)

    def close(self) -> None:
        self.vault.close()
