"""Key vault and tamper-evident audit log. Never imports ifadit or torch: auditors install it alone.

The offline verification names (`verify_bundle`, `VerifyReport`, audit records, errors) import no
database code; the vault names (`Vault`, `open_vault`, …) load SQLAlchemy and Alembic on first use
(PEP 562), so `import keyvault` stays light for an auditor.
"""

from __future__ import annotations

import importlib
from typing import Any

from keyvault.audit import AuditEntry, InclusionProof, TreeHead
from keyvault.envelope import KdfParams
from keyvault.errors import (
    ApprovalPending,
    AuditVerificationError,
    AuthenticationError,
    IntegrityError,
    KeyStateError,
    NotFound,
    PermissionDenied,
    SealedDataError,
    VaultError,
    VaultNotFound,
    VaultSchemaError,
)
from keyvault.verify import VerifyReport, verify_bundle

_DATABASE_NAMES = {
    "ApprovalInfo": "keyvault.access",
    "RequestInfo": "keyvault.access",
    "KeyInfo": "keyvault.keys",
    "UnsealedKey": "keyvault.keys",
    "VersionInfo": "keyvault.keys",
    "Policy": "keyvault.vault",
    "UserInfo": "keyvault.vault",
    "Vault": "keyvault.vault",
    "open_vault": "keyvault.vault",
}


def __getattr__(name: str) -> Any:
    module = _DATABASE_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'keyvault' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "ApprovalInfo",
    "ApprovalPending",
    "AuditEntry",
    "AuditVerificationError",
    "AuthenticationError",
    "InclusionProof",
    "IntegrityError",
    "KdfParams",
    "KeyInfo",
    "KeyStateError",
    "NotFound",
    "PermissionDenied",
    "Policy",
    "RequestInfo",
    "SealedDataError",
    "TreeHead",
    "UnsealedKey",
    "UserInfo",
    "Vault",
    "VaultError",
    "VaultNotFound",
    "VaultSchemaError",
    "VerifyReport",
    "VersionInfo",
    "open_vault",
    "verify_bundle",
]
