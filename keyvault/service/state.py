"""The running service's state: sealed or unsealed, and the per-request vault of the authenticated user.

Sealed, it holds the database engine and public facts only. Unsealing (T shares, or the HSM) rebuilds
a candidate KEK and accepts it only when it opens the audit signing key sealed under it. Unsealed,
each request gets a ``ServiceVault``: the library's ``Vault`` acting as the token's user, sharing the
engine, whose new users get login verifiers instead of keyslots, and whose close publishes a
checkpoint without disposing of the shared engine.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from keyvault import db
from keyvault.envelope import KdfParams, unseal
from keyvault.errors import PermissionDenied, SealedDataError, VaultError
from keyvault.ledger import SignedHead
from keyvault.records import UserInfo
from keyvault.schema import ServiceSealRow, UserRow, VaultRow
from keyvault.service import hsm as hsm_module
from keyvault.service.credentials import new_verifier
from keyvault.service.errors import ServiceSealed, UnsealError
from keyvault.service.seal import Unsealer
from keyvault.vault import Clock, Secret, Vault, aad, admit, checkpoints_path, utc_now


class ServiceVault(Vault):
    """A ``Vault`` inside the service: verifiers instead of keyslots; close checkpoints but keeps the engine.

    Heads the service verified are shared by every request, so an action that appends re-checks the
    newest head's root first (``recheck_head_before_append``): one read of the leaf hashes, as the head
    that closes the request reads them anyway.
    """

    recheck_head_before_append = True

    def wrap_for_user(
        self, session: Session, user: UserRow, passphrase: bytes, kdf: KdfParams | None
    ) -> None:
        session.add(
            new_verifier(
                self._kek.reveal(), self.id, user, passphrase, kdf or KdfParams.generate(), self.clock()
            )
        )

    def close(self) -> None:
        if self._appended:
            self.checkpoint()


class ServiceState:
    """One service-mode vault behind the API: engine, seal configuration, and the KEK once unsealed."""

    def __init__(
        self,
        url: str,
        *,
        clock: Clock = utc_now,
        checkpoints: str | os.PathLike[str] | None = None,
        hsm: hsm_module.HsmConfig | None = None,
    ) -> None:
        self.url = db.resolve_url(url)
        self.engine = db.make_engine(self.url)
        db.check_revision(self.engine, self.url)
        self.clock = clock
        self.hsm = hsm
        with Session(self.engine) as session:
            row = session.scalars(select(VaultRow)).one_or_none()
            if row is None:
                raise db.VaultNotFound(
                    f"no vault at {db.display_url(self.url)}", hint="run `ifadit vault init --service`"
                )
            seal_row = session.get(ServiceSealRow, row.id)
            if seal_row is None:
                raise VaultError(
                    f"vault {row.id} is a local (single-custodian) vault: its users' keyslots hold the KEK",
                    hint="create a service-mode vault with `ifadit vault init --service` and serve that",
                )
            self.vault_id = row.id
            self.public_key = row.audit_public_key
            self._sealed_signing_key = row.audit_signing_key_sealed
            self.mode = seal_row.mode
            self.share_count = seal_row.share_count
            self.threshold = seal_row.threshold
            self._hsm_blob = seal_row.hsm_wrapped_kek
        self.checkpoints = checkpoints_path(self.url, self.vault_id, checkpoints)
        self.unsealer = Unsealer(max(self.threshold, 2))
        self._kek: Secret | None = None
        self._signing_key: Secret | None = None
        self._lock = threading.Lock()
        self.verified_heads: set[SignedHead] = set()  # tree heads whose root the tail check recomputed

    # ------------------------------------------------------------------ seal state

    @property
    def sealed(self) -> bool:
        return self._kek is None

    def status(self) -> dict[str, Any]:
        """Public facts: sealed or not, the share threshold and how many shares arrived (no secret)."""
        return {
            "vault_id": self.vault_id,
            "sealed": self.sealed,
            "mode": self.mode,
            "threshold": self.threshold,
            "shares": self.share_count,
            "progress": 0 if not self.sealed else self.unsealer.progress,
        }

    def _accept(self, candidate: bytes, source: str) -> None:
        try:
            signing = unseal(
                candidate, self._sealed_signing_key, aad("audit-signing-key", vault=self.vault_id)
            )
        except (SealedDataError, ValueError):
            raise UnsealError(
                f"the {source} did not rebuild this vault's KEK: unseal progress reset",
                hint="each custodian submits their own share of this vault again",
            ) from None
        with self._lock:
            self._kek, self._signing_key = Secret(candidate), Secret(signing)

    def submit_share(self, share: str) -> dict[str, Any]:
        """Add one custodian's share; unseal when the threshold is reached. ``UnsealError`` for a bad share."""
        if not self.sealed:
            return self.status()
        if self.mode != "shamir":
            raise UnsealError(
                "this vault is unsealed by its HSM, not by shares", hint="start the service with --hsm-module"
            )
        candidate = self.unsealer.add(share)
        if candidate is not None:
            self._accept(candidate, "shares")
        return self.status()

    def auto_unseal(self) -> None:
        """Unseal with the HSM (HSM-mode vaults)."""
        if self.mode != "hsm" or self._hsm_blob is None:
            raise UnsealError("this vault is unsealed by Shamir shares, not by an HSM")
        if self.hsm is None:
            raise UnsealError("no HSM configured", hint="pass --hsm-module, --hsm-token and the PIN")
        self._accept(hsm_module.unwrap_kek(self.hsm, self._hsm_blob), "HSM-wrapped KEK")

    def seal(self) -> None:
        """Forget the KEK and the signing key: the service refuses every request until unsealed again."""
        with self._lock:
            self._kek = self._signing_key = None
        self.unsealer.reset()

    # ------------------------------------------------------------------ per-request vaults

    def _secrets(self) -> tuple[bytes, bytes]:
        with self._lock:
            if self._kek is None or self._signing_key is None:
                raise ServiceSealed()
            return self._kek.reveal(), self._signing_key.reveal()

    def kek(self) -> bytes:
        """The unsealed KEK (``ServiceSealed`` while sealed); for the login check only."""
        return self._secrets()[0]

    @contextmanager
    def vault_for(self, user: str) -> Iterator[ServiceVault]:
        """The library's vault acting as ``user``; refused for a disabled or removed user."""
        kek, signing = self._secrets()
        with Session(self.engine) as session:
            row = session.scalar(select(UserRow).where(UserRow.name == user))
            info = UserInfo.from_row(row) if row else None
            vault_row = session.scalars(select(VaultRow)).one()
            mac, refusal = admit(session, kek, vault_row, row) if row else (None, None)
        if info is None or (info.disabled and refusal is None):
            raise PermissionDenied(f"user {user} is disabled or was removed")
        vault = ServiceVault(
            url=self.url,
            engine=self.engine,
            vault_id=self.vault_id,
            user=info,
            kek=kek,
            signing_key=signing,
            public_key=self.public_key,
            clock=self.clock,
            checkpoints=self.checkpoints,
            row_mac=mac,
            verified_heads=self.verified_heads,
        )
        if refusal is not None:
            vault.refuse_unlock(str(refusal))
            raise refusal
        vault.seal_in()
        try:
            yield vault
        finally:
            vault.close()

    def close(self) -> None:
        """Seal and release the database."""
        self.seal()
        self.engine.dispose()
