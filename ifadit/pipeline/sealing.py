"""Original face regions for `--seal-original`: which pixels to seal, the binding context, and the inverse.

The sealed region of a face is the bounding box of every pixel its paste-back may change (the face mask's
support) plus `SEAL_MARGIN` pixels, so writing the unsealed regions back reproduces the original image
exactly wherever faces were replaced.

The context each region is sealed under (the AES-GCM associated data of both the data key and the pixels,
and part of the keyed commitment: `keyvault.evidence`) binds
- where the bytes go: the region's box (x0, y0, x1, y1) and the image shape;
- which output they belong to: the manifest's identity (`SealBinding`: its random `manifest_id`, vault,
  backend, model, key handle and version), the output's pixel digest (of the frame, for video), and the
  frame and face index.
The manifest signature alone cannot protect these: every holder of the signing key can re-sign an edited
manifest. With them in the associated data, a region moved inside its image, or copied into another face,
frame, output or manifest, fails to open with the one opaque `SealedDataError`, even when re-signed.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

import numpy as np

from ifadit.errors import ManifestError
from ifadit.faces.align import AlignedFace
from ifadit.faces.blend import face_mask
from ifadit.media.manifest import Manifest, SealedRegion
from keyvault import SealedDataError
from keyvault.evidence import SealedEvidence, seal_region, unseal_region

SEAL_MARGIN = 2  # pixels added around the mask's support on each side
CONTEXT_KIND = "ifadit-sealed-region/2"  # /1 (manifests /1, /2) bound neither the box nor the manifest

Region = tuple[int, int, int, int]


def changed_region(aligned: AlignedFace, shape: tuple[int, ...], mask_scale: float) -> Region:
    """(x0, y0, x1, y1), x1/y1 exclusive: the pixels paste-back may change for this face, plus the margin."""
    mask = face_mask(aligned, shape, mask_scale)
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    height, width = shape[:2]
    if rows.size == 0:  # the face lies outside the frame: nothing is changed, seal one pixel
        return 0, 0, 1, 1
    return (
        max(int(cols[0]) - SEAL_MARGIN, 0),
        max(int(rows[0]) - SEAL_MARGIN, 0),
        min(int(cols[-1]) + 1 + SEAL_MARGIN, width),
        min(int(rows[-1]) + 1 + SEAL_MARGIN, height),
    )


@dataclass(frozen=True)
class SealBinding:
    """The identity of one output's manifest, known before its faces are sealed; every region binds it."""

    manifest_id: str  # `ifadit.media.manifest.new_manifest_id`, drawn per output
    vault_id: str
    backend: str
    model_id: str | None
    model_sha256: str | None
    key_handle: str
    key_version: int

    @classmethod
    def of(cls, manifest: Manifest) -> SealBinding:
        """The binding a manifest's sealed regions were made under (ValueError for one that cannot have any)."""
        if manifest.manifest_id is None or manifest.key_handle is None or manifest.key_version is None:
            raise ValueError("only a manifest with a manifest_id and a key can carry bound sealed regions")
        return cls(
            manifest_id=manifest.manifest_id,
            vault_id=manifest.vault_id,
            backend=manifest.backend,
            model_id=manifest.model_id,
            model_sha256=manifest.model_sha256,
            key_handle=manifest.key_handle,
            key_version=manifest.key_version,
        )


def seal_context(
    binding: SealBinding,
    *,
    pixels_sha256: str,
    shape: tuple[int, ...],
    face: int,
    frame: int | None,
    region: Region,
) -> bytes:
    """The associated data a region is sealed under (canonical JSON; see the module docstring)."""
    fields = {
        "kind": CONTEXT_KIND,
        "manifest": binding.manifest_id,
        "vault": binding.vault_id,
        "backend": binding.backend,
        "model": binding.model_id,
        "model_sha256": binding.model_sha256,
        "key": binding.key_handle,
        "version": binding.key_version,
        "pixels": pixels_sha256,
        "shape": [int(n) for n in shape],
        "frame": frame,
        "face": face,
        "region": [int(n) for n in region],
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def seal_face(
    material: bytes,
    original: np.ndarray,
    region: Region,
    binding: SealBinding,
    *,
    pixels_sha256: str,
    face: int,
    frame: int | None,
) -> SealedRegion:
    """Seal `original`'s pixels inside `region` for the manifest, bound to the region, shape and `binding`."""
    x0, y0, x1, y1 = region
    context = seal_context(
        binding, pixels_sha256=pixels_sha256, shape=original.shape, face=face, frame=frame, region=region
    )
    sealed = seal_region(material, np.ascontiguousarray(original[y0:y1, x0:x1]).tobytes(), context)
    return SealedRegion(
        region=region,
        wrapped_key=base64.b64encode(sealed.wrapped_key).decode("ascii"),
        ciphertext=base64.b64encode(sealed.ciphertext).decode("ascii"),
        commitment=sealed.commitment.hex(),
    )


def unseal_face(
    material: bytes,
    sealed: SealedRegion,
    binding: SealBinding,
    shape: tuple[int, ...],
    *,
    pixels_sha256: str,
    face: int,
    frame: int | None,
    source: str,
) -> np.ndarray:
    """The original pixels [h, w, 3] of a sealed region; `SealedDataError` (opaque) when anything was altered,
    the region moved or the payload came from another face, frame, output or manifest."""
    x0, y0, x1, y1 = sealed.region
    height, width = shape[:2]
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise ManifestError(
            f"{source}: sealed region {sealed.region} lies outside the {width}x{height} image"
        )
    try:
        evidence = SealedEvidence(
            wrapped_key=base64.b64decode(sealed.wrapped_key, validate=True),
            ciphertext=base64.b64decode(sealed.ciphertext, validate=True),
            commitment=bytes.fromhex(sealed.commitment),
        )
    except (binascii.Error, ValueError):
        raise SealedDataError() from None
    context = seal_context(
        binding, pixels_sha256=pixels_sha256, shape=shape, face=face, frame=frame, region=sealed.region
    )
    region = unseal_region(material, evidence, context)
    if len(region) != (y1 - y0) * (x1 - x0) * 3:
        raise SealedDataError() from None
    return np.frombuffer(region, dtype=np.uint8).reshape(y1 - y0, x1 - x0, 3)
