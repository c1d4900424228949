"""Typed errors of the image and model half; each carries an exit code and a hint a user can act on."""

from __future__ import annotations


# Deliberate mirror of keyvault.errors.VaultError (message + hint + exit code): keyvault never imports ifadit
# (an auditor installs it alone), so the two roots cannot share a base; keep them alike by hand.
class IfaditError(Exception):
    """Root of every error ifadit raises on purpose. `exit_code` follows the CLI convention."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text} ({self.hint})" if self.hint else text


class InputError(IfaditError):
    """An input file is unreadable, malformed, too large or of an unsupported kind."""


class NoFaceError(IfaditError):
    """No face was found where one was required (`--require-face`)."""


class ManifestError(IfaditError):
    """A manifest is missing, malformed, or its signature does not verify."""

    exit_code = 4


class ModelError(IfaditError):
    """Model weights are missing, corrupt (checksum), or do not match the expected architecture."""


class ModelIntegrityError(ModelError):
    """A shipped model file differs from the sha256 its index records, or is missing."""

    exit_code = 4


class BackendUnavailable(IfaditError):
    """A backend was asked for whose optional dependencies or weights are not installed."""


class EngineUnavailable(IfaditError):
    """A batch engine was asked for whose optional dependencies are not installed (e.g. Ray)."""
