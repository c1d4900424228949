"""Create a service-mode vault: the KEK goes to Shamir shares (printed once) or an HSM, never into a keyslot.

Everything else is the ordinary ``Vault.init`` (schema, audit signing key sealed under the KEK, the
first admin, the ``vault.init`` audit entry, the first checkpoint); the first admin gets a login
verifier (``credentials``) instead of a keyslot, and the ``service_seal`` row records how the KEK is
kept, in the same transaction.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.orm import Session

from keyvault.audit import key_fingerprint
from keyvault.db import display_url
from keyvault.envelope import KdfParams
from keyvault.schema import ServiceSealRow, UserRow
from keyvault.service import hsm as hsm_module
from keyvault.service.credentials import new_verifier
from keyvault.service.seal import check_split, split_kek
from keyvault.vault import Clock, Vault, utc_now


@dataclass(frozen=True)
class ServiceInit:
    """What `vault init --service` reports; ``shares`` are shown once and never stored."""

    vault_id: str
    url: str
    admin: str
    mode: str  # "shamir" | "hsm"
    threshold: int
    audit_key_fingerprint: str
    shares: tuple[str, ...] = field(repr=False)


def init_service_vault(
    url: str | None,
    admin_name: str,
    passphrase: bytes,
    *,
    shares: int = 5,
    threshold: int = 3,
    hsm: hsm_module.HsmConfig | None = None,
    kdf: KdfParams | None = None,
    unlock_delay: timedelta = timedelta(0),
    checkpoints: str | os.PathLike[str] | None = None,
    clock: Clock = utc_now,
) -> ServiceInit:
    """Create a vault whose KEK only the unsealed service holds: ``threshold`` of ``shares``, or the HSM."""
    if hsm is None:
        check_split(shares, threshold)
    else:
        hsm_module.create_wrapping_key(hsm)
    printed: list[str] = []

    def enroll(
        session: Session, vault_id: str, admin: UserRow, kek: bytes, secret: bytes, params: KdfParams
    ) -> None:
        session.add(new_verifier(kek, vault_id, admin, secret, params, clock()))
        if hsm is None:
            printed.extend(split_kek(kek, shares, threshold))
        session.add(
            ServiceSealRow(
                vault_id=vault_id,
                mode="shamir" if hsm is None else "hsm",
                threshold=threshold if hsm is None else 1,
                share_count=shares if hsm is None else 0,
                hsm_key_label=hsm.key_label if hsm else None,
                hsm_wrapped_kek=hsm_module.wrap_kek(hsm, kek) if hsm else None,
                created=clock(),
            )
        )

    with Vault.init(
        url,
        admin_name,
        passphrase,
        kdf=kdf,
        clock=clock,
        unlock_delay=unlock_delay,
        checkpoints=checkpoints,
        enroll=enroll,
    ) as vault:
        return ServiceInit(
            vault_id=vault.id,
            url=display_url(vault.url),
            admin=admin_name,
            mode="shamir" if hsm is None else "hsm",
            threshold=threshold if hsm is None else 1,
            audit_key_fingerprint=key_fingerprint(vault.public_key),
            shares=tuple(printed),
        )
