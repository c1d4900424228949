"""``VaultAPI`` on an open vault: each call is the library function the command used to call.

The CLI uses it on a local vault; the vault service uses it for its authenticated user.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from keyvault import access, admin_actions, auditor, keys
from keyvault.audit import AuditEntry, InclusionProof, TreeHead
from keyvault.records import AdminActionInfo, KeyInfo, Policy, RequestInfo, UserInfo
from keyvault.service.api import CLOSE_VERBS, DECIDE_VERBS, KEY_VERBS, ClosedOnExit, NewRequest, PolicyChange
from keyvault.vault import Vault


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
