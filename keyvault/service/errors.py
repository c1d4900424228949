"""Typed errors of the vault service and its client, each a ``VaultError`` with a one-line actionable message."""

from __future__ import annotations

from keyvault.errors import AuthenticationError, VaultError


class ServiceSealed(VaultError):
    """The service holds no KEK yet (or was sealed again): every vault request is refused."""

    def __init__(
        self,
        message: str = "the vault service is sealed: it refuses every request",
        *,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint or "unseal it: `ifadit vault operator unseal --vault URL`")


class UnsealError(VaultError):
    """A share or an HSM-wrapped KEK that does not rebuild this vault's KEK, or a malformed share."""


class HsmError(VaultError):
    """The HSM could not be reached, logged into, or asked to wrap or unwrap (never names the PIN)."""


class TokenError(AuthenticationError):
    """No token, or an unknown, expired or revoked token."""


class LoginLocked(AuthenticationError):
    """Too many failed logins for one user name: the service refuses its logins for a while."""


class NotRouted(VaultError):
    """A command that cannot yet run through the vault service (and must never fall back to the database)."""

    exit_code = 2


class ServiceUnavailable(VaultError):
    """The service could not be reached, answered garbage, or the URL is not allowed (plain HTTP off loopback)."""


class BadRequest(VaultError):
    """The service refused a request's arguments (the library's ``ValueError``): a usage error, as locally."""

    exit_code = 2


class BadJobArchive(VaultError):
    """A job's archive is not one this service or client accepts (names, links, size, count)."""

    exit_code = 2


class JobFailed(VaultError):
    """A job the service ran (anonymize, restore) stopped with the pipeline's error; its exit code travels."""

    def __init__(self, message: str, *, hint: str | None = None, exit_code: int = 1) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = exit_code
