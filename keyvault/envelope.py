"""Crypto recipe layer: the only module that imports `cryptography.hazmat`.

Recipes (after pyca's Fernet: a safe construction on top of hazmat, one opaque error for every
tampering case, raised ``from None`` so no secret reaches a traceback):

- ``seal`` / ``unseal``: AES-256-GCM with associated data. Blob layout::

      0x01 (version) ‖ 12-byte random nonce ‖ ciphertext ‖ 16-byte tag

  Any failure (wrong key, wrong associated data, truncation, unknown version) raises
  ``SealedDataError`` with the same message.
- ``derive_wrapping_key``: Argon2id (RFC 9106) from a passphrase, parameters in ``KdfParams``.
- ``hkdf_sha256``, ``hmac_sha256`` / ``hmac_equal`` (constant-time), Ed25519 ``sign`` /
  ``verify_signature`` on raw 32-byte keys.
- ``aes_gcm_encrypt`` / ``aes_gcm_decrypt`` take an explicit nonce; they exist for known-answer
  tests only and must not be used to seal data (a repeated nonce breaks GCM).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from keyvault.errors import SealedDataError

KEY_BYTES = 32  # AES-256 key, KEK, data key and key-material size
NONCE_BYTES = 12  # GCM's 96-bit nonce
TAG_BYTES = 16  # GCM's 128-bit tag
SEAL_VERSION = 0x01  # first byte of every sealed blob
SALT_BYTES = 16  # Argon2id salt
SIGNATURE_BYTES = 64  # Ed25519 signature
ED25519_KEY_BYTES = 32  # raw Ed25519 private seed and public key


def random_key() -> bytes:
    """Return 32 fresh random bytes from the OS CSPRNG (a KEK, a data key or key material)."""
    return os.urandom(KEY_BYTES)


# ---------------------------------------------------------------- AES-256-GCM


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes | bytearray) or len(key) != KEY_BYTES:
        raise ValueError(f"an AES-256 key must be {KEY_BYTES} bytes")


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt and authenticate ``plaintext`` bound to ``aad``; see the module docstring for the layout."""
    _check_key(key)
    nonce = os.urandom(NONCE_BYTES)
    return bytes([SEAL_VERSION]) + nonce + AESGCM(bytes(key)).encrypt(nonce, plaintext, aad)


def unseal(key: bytes, blob: bytes, aad: bytes) -> bytes:
    """Open a blob made by ``seal``; raise ``SealedDataError`` (one opaque message) on any failure."""
    _check_key(key)
    if len(blob) < 1 + NONCE_BYTES + TAG_BYTES or blob[0] != SEAL_VERSION:
        raise SealedDataError() from None
    nonce = bytes(blob[1 : 1 + NONCE_BYTES])
    try:
        return AESGCM(bytes(key)).decrypt(nonce, bytes(blob[1 + NONCE_BYTES :]), aad)
    except InvalidTag:
        raise SealedDataError() from None


def aes_gcm_encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """AES-GCM with an explicit nonce; returns ciphertext ‖ 16-byte tag. Known-answer tests only."""
    return AESGCM(key).encrypt(nonce, plaintext, aad)


def aes_gcm_decrypt(key: bytes, nonce: bytes, ciphertext_and_tag: bytes, aad: bytes) -> bytes:
    """Inverse of ``aes_gcm_encrypt``; raises ``SealedDataError`` when authentication fails."""
    try:
        return AESGCM(key).decrypt(nonce, ciphertext_and_tag, aad)
    except InvalidTag:
        raise SealedDataError() from None


# ---------------------------------------------------------------- Argon2id


@dataclass(frozen=True)
class KdfParams:
    """Argon2id parameters, stored beside each keyslot so old slots stay openable after a change of defaults.

    Defaults follow OWASP's password-storage guidance for Argon2id (>= 19 MiB, we take more):
    64 MiB memory, 3 passes, 4 lanes, 32-byte output. An unlock costs one derivation, and an offline
    guesser pays the same 64 MiB and time per guess (docs/security.md, "Passphrase brute force").
    """

    salt: bytes  # 16 random bytes, fresh per keyslot
    iterations: int = 3  # Argon2 passes (t)
    memory_cost: int = 64 * 1024  # KiB (m): 64 MiB
    lanes: int = 4  # parallelism (p)
    length: int = KEY_BYTES  # output bytes
    algorithm: str = "argon2id"

    def __post_init__(self) -> None:
        if self.algorithm != "argon2id":
            raise ValueError(f"unsupported key-derivation algorithm {self.algorithm!r} (expected 'argon2id')")
        if len(self.salt) < 8:
            raise ValueError("Argon2id salt must be at least 8 bytes")
        if self.iterations < 1 or self.lanes < 1 or self.length < 4:
            raise ValueError("Argon2id needs iterations >= 1, lanes >= 1 and length >= 4")
        if self.memory_cost < 8 * self.lanes:
            raise ValueError("Argon2id memory_cost (KiB) must be at least 8 x lanes")

    @classmethod
    def generate(cls, memory_cost: int = 64 * 1024, iterations: int = 3, lanes: int = 4) -> KdfParams:
        """New parameters with a fresh random salt (tests pass a small ``memory_cost`` to stay fast)."""
        return cls(salt=os.urandom(SALT_BYTES), iterations=iterations, memory_cost=memory_cost, lanes=lanes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (salt in standard base64)."""
        return {
            "algorithm": self.algorithm,
            "salt": base64.b64encode(self.salt).decode("ascii"),
            "iterations": self.iterations,
            "memory_cost": self.memory_cost,
            "lanes": self.lanes,
            "length": self.length,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KdfParams:
        """Inverse of ``to_dict``; raises ``ValueError`` naming the bad field."""
        try:
            salt = base64.b64decode(str(data["salt"]), validate=True)
            values = {name: data[name] for name in ("iterations", "memory_cost", "lanes", "length")}
            algorithm = data["algorithm"]
        except KeyError as exc:
            raise ValueError(f"key-derivation parameters lack the field {exc.args[0]!r}") from None
        except binascii.Error:
            raise ValueError("key-derivation parameters: salt is not valid base64") from None
        for name, value in values.items():
            if type(value) is not int:
                raise ValueError(f"key-derivation parameters: {name} must be an integer")
        return cls(salt=salt, algorithm=str(algorithm), **values)


def derive_wrapping_key(passphrase: bytes, params: KdfParams) -> bytes:
    """Argon2id(passphrase) → a ``params.length``-byte key that wraps the vault KEK in a keyslot."""
    kdf = Argon2id(
        salt=params.salt,
        length=params.length,
        iterations=params.iterations,
        lanes=params.lanes,
        memory_cost=params.memory_cost,
    )
    return kdf.derive(passphrase)


# ---------------------------------------------------------------- HKDF, HMAC


def hkdf_sha256(ikm: bytes, *, info: bytes, length: int, salt: bytes | None = None) -> bytes:
    """RFC 5869 HKDF-SHA256 (extract and expand); ``salt=None`` means a zero-filled salt."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    """HMAC-SHA256(key, data), 32 bytes."""
    mac = crypto_hmac.HMAC(key, hashes.SHA256())
    mac.update(data)
    return mac.finalize()


def hmac_equal(key: bytes, data: bytes, tag: bytes) -> bool:
    """True when ``tag`` is HMAC-SHA256(key, data); constant-time comparison, never raises on a bad tag."""
    return hmac.compare_digest(hmac_sha256(key, data), bytes(tag))


# ---------------------------------------------------------------- Ed25519


def generate_signing_key() -> tuple[bytes, bytes]:
    """New Ed25519 key pair as (raw 32-byte private seed, raw 32-byte public key)."""
    private = Ed25519PrivateKey.generate()
    private_raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public_raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return private_raw, public_raw


def public_key_of(private_raw: bytes) -> bytes:
    """Raw public key belonging to a raw Ed25519 private seed."""
    private = Ed25519PrivateKey.from_private_bytes(private_raw)
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def sign(private_raw: bytes, message: bytes) -> bytes:
    """Ed25519 signature (64 bytes) of ``message``."""
    return Ed25519PrivateKey.from_private_bytes(private_raw).sign(message)


def verify_signature(public_raw: bytes, signature: bytes, message: bytes) -> bool:
    """True for a valid Ed25519 signature; False for a bad signature or any malformed input (never raises)."""
    try:
        Ed25519PublicKey.from_public_bytes(bytes(public_raw)).verify(bytes(signature), bytes(message))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True
