"""Key vault and tamper-evident audit log. Never imports ifadit or torch: auditors install it alone.

`import keyvault` loads only the errors and the records people are shown (`keyvault.records`); every
other name loads its module on first use (PEP 562): the offline verification names (`verify_bundle`,
`VerifyReport`, audit records) their cryptography but no database code, the vault names (`Vault`,
`open_vault`, …) SQLAlchemy and Alembic. So an auditor never loads the database code, and a command
sent to the vault service starts without either.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from keyvault.errors import (
    ApprovalPending,
    AuditVerificationError,
    AuthenticationError,
    CheckpointError,
    IntegrityError,
    KeyStateError,
    NotFound,
    PermissionDenied,
    SealedDataError,
    TamperedRow,
    VaultError,
    VaultNotFound,
    VaultSchemaError,
    WitnessRefused,
)
from keyvault.records import ApprovalInfo, KeyInfo, Policy, RequestInfo, UserInfo, VersionInfo

if TYPE_CHECKING:  # the lazy names below, for type checkers
    from keyvault.audit import AuditEntry, InclusionProof, TreeHead, key_fingerprint
    from keyvault.db import display_url
    from keyvault.envelope import KdfParams
    from keyvault.excerpt import AuditFilter
    from keyvault.keys import UnsealedKey
    from keyvault.material import KeyMaterial
    from keyvault.schema import DEFAULT_UNLOCK_DELAY_MS, KEY_STATES, ROLES
    from keyvault.vault import (
        MAX_UNLOCK_DELAY,
        Vault,
        open_vault,
        upgrade_vault,
        verify_detached,
    )
    from keyvault.verify import (
        VerifyReport,
        format_public_key,
        load_public_key,
        verify_bundle,
        verify_inclusion_proof,
    )

_LAZY_NAMES = {
    "AuditEntry": "keyvault.audit",
    "InclusionProof": "keyvault.audit",
    "TreeHead": "keyvault.audit",
    "key_fingerprint": "keyvault.audit",
    "KdfParams": "keyvault.envelope",
    "AuditFilter": "keyvault.excerpt",
    "KeyMaterial": "keyvault.material",
    "VerifyReport": "keyvault.verify",
    "format_public_key": "keyvault.verify",
    "load_public_key": "keyvault.verify",
    "verify_bundle": "keyvault.verify",
    "verify_inclusion_proof": "keyvault.verify",
    "UnsealedKey": "keyvault.keys",
    "DEFAULT_UNLOCK_DELAY_MS": "keyvault.schema",
    "KEY_STATES": "keyvault.schema",
    "ROLES": "keyvault.schema",
    "display_url": "keyvault.db",
    "MAX_UNLOCK_DELAY": "keyvault.vault",
    "upgrade_vault": "keyvault.vault",
    "verify_detached": "keyvault.vault",
    "Vault": "keyvault.vault",
    "open_vault": "keyvault.vault",
}


def __getattr__(name: str) -> Any:
    module = _LAZY_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'keyvault' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "ApprovalInfo",
    "ApprovalPending",
    "AuditEntry",
    "AuditFilter",
    "AuditVerificationError",
    "AuthenticationError",
    "CheckpointError",
    "DEFAULT_UNLOCK_DELAY_MS",
    "InclusionProof",
    "IntegrityError",
    "KEY_STATES",
    "KdfParams",
    "KeyInfo",
    "KeyMaterial",
    "KeyStateError",
    "MAX_UNLOCK_DELAY",
    "NotFound",
    "PermissionDenied",
    "Policy",
    "ROLES",
    "RequestInfo",
    "SealedDataError",
    "TamperedRow",
    "TreeHead",
    "UnsealedKey",
    "UserInfo",
    "Vault",
    "VaultError",
    "VaultNotFound",
    "VaultSchemaError",
    "VerifyReport",
    "VersionInfo",
    "WitnessRefused",
    "display_url",
    "format_public_key",
    "key_fingerprint",
    "load_public_key",
    "open_vault",
    "upgrade_vault",
    "verify_bundle",
    "verify_detached",
    "verify_inclusion_proof",
]
