"""Key vault and tamper-evident audit log. Never imports ifadit or torch: auditors install it alone."""

from keyvault.access import ApprovalInfo, RequestInfo
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
from keyvault.keys import KeyInfo, UnsealedKey, VersionInfo
from keyvault.vault import Policy, UserInfo, Vault, open_vault
from keyvault.verify import VerifyReport, verify_bundle

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
