"""Keyed digests of content for the audit log: HMAC-SHA256 under a vault-held key, never a plain SHA-256.

An exported audit bundle leaves the vault (auditors, courts, other labs). A plain SHA-256 of an original
file in it would let anyone holding a guessed original confirm the guess, the one thing a public viewer
must never be able to do. So an audit entry names original content (an anonymize run's inputs, a restore's
output) by a keyed digest::

    hmac-sha256:<64 hex> = HMAC-SHA256(digest key, "ifadit-keyed-digest/1\\n" || SHA-256 hex of the content)

The prefix tells an auditor the value is keyed: it can be checked only with the vault. The digest key is
derived from the vault KEK with HKDF-SHA256 (info ``ifadit/audit-digest/v1``, then the vault id), only
while the vault is unlocked; it is never stored, logged or exported. Any unlocked vault user can recompute
the keyed digest of a file they hold (`Vault.keyed_digest`, CLI `ifadit audit digest FILE...`). Keying the
SHA-256 rather than the file's bytes lets a worker hash a file without the key, and is as strong: without
the key the value reveals nothing about the content.
"""

from __future__ import annotations

import re

from keyvault import envelope

KEYED_PREFIX = "hmac-sha256:"  # marks a keyed digest in an audit entry
DIGEST_KEY_INFO = b"ifadit/audit-digest/v1"  # HKDF info of the digest key (followed by "\n" and the vault id)
MESSAGE_LABEL = b"ifadit-keyed-digest/1\n"  # domain label in front of the SHA-256 hex that is keyed
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
KEYED_DIGEST = re.compile(re.escape(KEYED_PREFIX) + r"[0-9a-f]{64}")


def digest_key(kek: bytes, vault_id: str) -> bytes:
    """The vault's 32-byte digest key: HKDF-SHA256 of the KEK, bound to this purpose and this vault."""
    return envelope.hkdf_sha256(
        kek, info=DIGEST_KEY_INFO + b"\n" + vault_id.encode("utf-8"), length=envelope.KEY_BYTES
    )


def keyed_digest(key: bytes, sha256_hex: str) -> str:
    """``hmac-sha256:<hex>`` of content whose SHA-256 (64 lower-case hex digits) is ``sha256_hex``."""
    if not isinstance(sha256_hex, str) or not SHA256_HEX.fullmatch(sha256_hex):
        raise ValueError("a keyed digest is made from a SHA-256 as 64 lower-case hex digits")
    return KEYED_PREFIX + envelope.hmac_sha256(key, MESSAGE_LABEL + sha256_hex.encode("ascii")).hex()


def is_digest(value: object) -> bool:
    """True for what an audit entry may hold as a digest: a SHA-256 hex of public content, or a keyed digest."""
    return isinstance(value, str) and bool(SHA256_HEX.fullmatch(value) or KEYED_DIGEST.fullmatch(value))
