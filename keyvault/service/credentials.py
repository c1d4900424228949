"""Login verifiers of service-mode users: Argon2id(passphrase), MAC'd under a KEK-derived key, never a keyslot.

In service mode no user credential wraps the KEK, so a user who reads the database with their own
passphrase recovers nothing. The stored verifier is HMAC-SHA256(K_v, vault id ‖ user ‖ Argon2id(pw)),
with K_v = HKDF(KEK, "ifadit login verifier/1"): only the unsealed service can check or make one, so
an insider who writes the ``login_verifiers`` table cannot set another user's passphrase, and a thief
of the database cannot even test passphrase guesses offline without the KEK.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from keyvault.envelope import KdfParams, derive_wrapping_key, hkdf_sha256, hmac_equal, hmac_sha256
from keyvault.schema import UserRow, VerifierRow

VERIFIER_INFO = b"ifadit login verifier/1"


def _verifier_key(kek: bytes, vault_id: str) -> bytes:
    return hkdf_sha256(kek, info=VERIFIER_INFO + b"\n" + vault_id.encode(), length=32)


def _message(vault_id: str, user: str, stretched: bytes) -> bytes:
    return vault_id.encode() + b"\n" + user.encode() + b"\n" + stretched


def new_verifier(
    kek: bytes, vault_id: str, user: UserRow, passphrase: bytes, kdf: KdfParams, now: datetime
) -> VerifierRow:
    """The verifier row for ``user`` under ``passphrase`` (Argon2id with ``kdf``)."""
    if not passphrase:
        raise ValueError("a passphrase must not be empty")
    stretched = derive_wrapping_key(passphrase, kdf)
    tag = hmac_sha256(_verifier_key(kek, vault_id), _message(vault_id, user.name, stretched))
    return VerifierRow(user_id=user.id, kdf=kdf.to_dict(), verifier=tag, created=now)


def check_passphrase(
    kek: bytes, vault_id: str, session: Session, user: str, passphrase: bytes
) -> UserRow | None:
    """The user's row when ``passphrase`` is theirs, else None; an unknown user costs the same Argon2id work."""
    row = session.scalar(select(UserRow).where(UserRow.name == user))
    stored = session.scalar(select(VerifierRow).where(VerifierRow.user_id == row.id)) if row else None
    if stored is None:
        reference = session.scalars(select(VerifierRow).limit(1)).first()
        params = KdfParams.from_dict(reference.kdf) if reference else KdfParams.generate()
        derive_wrapping_key(
            passphrase, KdfParams.generate(params.memory_cost, params.iterations, params.lanes)
        )
        return None
    stretched = derive_wrapping_key(passphrase, KdfParams.from_dict(stored.kdf))
    if not hmac_equal(_verifier_key(kek, vault_id), _message(vault_id, user, stretched), stored.verifier):
        return None
    return row
