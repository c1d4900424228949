"""Typed errors of the key vault and audit log; each carries an exit code (CLI convention) and a hint."""

from __future__ import annotations


# Deliberate mirror of ifadit.errors.IfaditError (message + hint + exit code): keyvault never imports ifadit
# (an auditor installs it alone), so the two roots cannot share a base; keep them alike by hand.
class VaultError(Exception):
    """Root of every error the vault raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text} ({self.hint})" if self.hint else text


class VaultNotFound(VaultError):
    """No vault exists at the given URL (run `ifadit vault init`)."""


class VaultSchemaError(VaultError):
    """The database schema is older or newer than this code, or belongs to another application."""


class AuthenticationError(VaultError):
    """Unknown user or wrong passphrase. Deliberately does not say which of the two, nor which keyslot."""


class PermissionDenied(VaultError):
    """The acting user lacks the role an action needs, or is the requester trying to self-approve."""


class NotFound(VaultError):
    """An unknown key handle, user, request or sequence number."""


class KeyStateError(VaultError):
    """A key is in a lifecycle state that forbids the action (names the state)."""


class ApprovalPending(VaultError):
    """A restore needs an approval that has not been given yet."""

    exit_code = 3


class SealedDataError(VaultError):
    """A sealed blob failed authentication. One opaque message for every tampering case."""

    exit_code = 4

    def __init__(
        self, message: str = "sealed data failed authentication", *, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)


class IntegrityError(VaultError):
    """Stored data contradicts itself (a database from another vault, a broken audit chain)."""

    exit_code = 4


class AuditVerificationError(VaultError):
    """An audit bundle or tree head failed verification; `seq` names the first bad entry when known."""

    exit_code = 4

    def __init__(self, message: str, *, seq: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.seq = seq


class CheckpointError(AuditVerificationError):
    """A signed note or checkpoint is malformed, unsigned by the expected key, or its signature fails."""


class WitnessRefused(AuditVerificationError):
    """A witness refused to cosign: the checkpoint does not extend the one it cosigned last (names both sizes)."""


class TamperedRow(IntegrityError):
    """A row of security state fails its integrity tag: edited, inserted or copied outside the vault."""
