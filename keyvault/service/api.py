"""The vault operations the CLI calls, one interface for a local vault and for the vault service.

``VaultAPI`` lists them; ``LocalAPI`` runs them on an open ``Vault`` through the library (the CLI on a
local vault, and the service for its authenticated user); ``client.VaultClient`` sends the same calls
over HTTP. A command written against ``VaultAPI`` works both ways. Key use (anonymize, restore) and
restore requests are not in it yet: over the service those commands stop with ``NotRouted``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Protocol, Self

from keyvault import access, auditor, keys
from keyvault.audit import AuditEntry, TreeHead
from keyvault.keys import KeyInfo
from keyvault.vault import Policy, UserInfo, Vault

KEY_VERBS = ("suspend", "resume", "revoke", "destroy")


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


class VaultAPI(Protocol):
    """What the admin, key and audit commands need from a vault, wherever it runs."""

    @property
    def vault_id(self) -> str: ...
    @property
    def public_key(self) -> bytes: ...

    def add_user(self, name: str, roles: list[str], passphrase: bytes) -> UserInfo: ...
    def list_users(self) -> list[UserInfo]: ...
    def disable_user(self, name: str, reason: str | None) -> UserInfo: ...
    def policy(self) -> Policy: ...
    def set_policy(self, change: PolicyChange) -> Policy: ...
    def issue_key(self, case: str, purpose: str, expires: datetime | None) -> KeyInfo: ...
    def list_keys(self, case: str | None, state: str | None) -> list[KeyInfo]: ...
    def show_key(self, handle: str) -> KeyInfo: ...
    def rotate_key(self, handle: str) -> KeyInfo: ...
    def change_key_state(self, verb: str, handle: str, reason: str | None) -> KeyInfo: ...
    def audit_entries(self, case: str | None) -> list[AuditEntry]: ...
    def tree_heads(self) -> list[TreeHead]: ...
    def checkpoint(self) -> str: ...
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

    def add_user(self, name: str, roles: list[str], passphrase: bytes) -> UserInfo:
        return access.add_user(self.vault, name, roles, passphrase)

    def list_users(self) -> list[UserInfo]:
        return access.list_users(self.vault)

    def disable_user(self, name: str, reason: str | None) -> UserInfo:
        return access.disable_user(self.vault, name, reason=reason)

    def policy(self) -> Policy:
        return self.vault.policy()

    def set_policy(self, change: PolicyChange) -> Policy:
        return access.set_policy(self.vault, **dataclasses.asdict(change))

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

    def audit_entries(self, case: str | None) -> list[AuditEntry]:
        return auditor.entries(self.vault, case=case)

    def tree_heads(self) -> list[TreeHead]:
        return auditor.tree_heads(self.vault)

    def checkpoint(self) -> str:
        return auditor.checkpoint(self.vault)

    def close(self) -> None:
        self.vault.close()
