"""Sealed evidence: original face regions sealed for a bit-exact restore (`--seal-original`).

Per sealed region:
- a fresh 256-bit data key seals the region's bytes with AES-256-GCM; the associated data binds the
  context the caller names (``ifadit.pipeline.sealing``: the region's box and the image shape, the output
  digest, frame and face index, and the manifest's identity with key handle and version), so a payload
  moved inside its image or to another output, face, manifest or key version fails to open, even under
  a re-signed manifest;
- the data key is sealed under a wrapping key derived from the case key's material with HKDF-SHA256
  (info ``ifadit/seal-original/v1``), never under the material itself;
- a keyed commitment (HMAC-SHA256 under a second HKDF output of the data key) of the region lets a
  restore prove that the unsealed bytes are the original ones without storing any unkeyed digest of the
  original in the output.

All failures are one opaque `SealedDataError`.
"""

from __future__ import annotations

from dataclasses import dataclass

from keyvault import envelope
from keyvault.errors import SealedDataError

WRAP_INFO = b"ifadit/seal-original/v1/wrap"
COMMIT_INFO = b"ifadit/seal-original/v1/commit"


@dataclass(frozen=True)
class SealedEvidence:
    """The three opaque parts stored in a manifest's sealed payload."""

    wrapped_key: bytes
    ciphertext: bytes
    commitment: bytes

    def __repr__(self) -> str:
        return f"SealedEvidence(<{len(self.ciphertext)} sealed bytes>)"


def _wrapping_key(material: bytes) -> bytes:
    return envelope.hkdf_sha256(material, info=WRAP_INFO, length=envelope.KEY_BYTES)


def _commit_key(data_key: bytes) -> bytes:
    return envelope.hkdf_sha256(data_key, info=COMMIT_INFO, length=envelope.KEY_BYTES)


def _committed_bytes(region: bytes, context: bytes) -> bytes:
    return context + b"\x00" + region


def seal_region(material: bytes, region: bytes, context: bytes) -> SealedEvidence:
    """Seal `region` (raw pixel bytes) under a fresh data key wrapped by the case key `material`."""
    data_key = envelope.random_key()
    return SealedEvidence(
        wrapped_key=envelope.seal(_wrapping_key(material), data_key, context),
        ciphertext=envelope.seal(data_key, region, context),
        commitment=envelope.hmac_sha256(_commit_key(data_key), _committed_bytes(region, context)),
    )


def unseal_region(material: bytes, evidence: SealedEvidence, context: bytes) -> bytes:
    """Open a sealed region and check its commitment; `SealedDataError` on any mismatch."""
    data_key = envelope.unseal(_wrapping_key(material), evidence.wrapped_key, context)
    region = envelope.unseal(data_key, evidence.ciphertext, context)
    if not envelope.hmac_equal(_commit_key(data_key), _committed_bytes(region, context), evidence.commitment):
        raise SealedDataError() from None
    return region
