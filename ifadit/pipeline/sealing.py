"""Original face regions for `--seal-original`: which pixels to seal, the binding context, and the inverse.

The sealed region of a face is the bounding box of every pixel its paste-back may change (the face mask's
support) plus `SEAL_MARGIN` pixels, so writing the unsealed regions back reproduces the original image
exactly wherever faces were replaced. The context each region is sealed under binds the output's pixel
digest (of the frame, for video), the frame and face index, and the key handle and version: a payload
copied into another output, face or key version fails to open (`keyvault.evidence`).
"""

from __future__ import annotations

import base64
import binascii
import json

import numpy as np

from ifadit.errors import ManifestError
from ifadit.faces.align import AlignedFace
from ifadit.faces.blend import face_mask
from ifadit.media.manifest import SealedRegion
from keyvault import SealedDataError
from keyvault.evidence import SealedEvidence, seal_region, unseal_region

SEAL_MARGIN = 2  # pixels added around the mask's support on each side
CONTEXT_KIND = "ifadit-sealed-region/1"

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


def seal_context(
    pixels_sha256: str, face: int, frame: int | None, key_handle: str, key_version: int
) -> bytes:
    """The associated data a region is sealed under (canonical JSON)."""
    fields = {
        "kind": CONTEXT_KIND,
        "pixels": pixels_sha256,
        "face": face,
        "frame": frame,
        "key": key_handle,
        "version": key_version,
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def seal_face(material: bytes, original: np.ndarray, region: Region, context: bytes) -> SealedRegion:
    """Seal `original`'s pixels inside `region` for the manifest."""
    x0, y0, x1, y1 = region
    sealed = seal_region(material, np.ascontiguousarray(original[y0:y1, x0:x1]).tobytes(), context)
    return SealedRegion(
        region=region,
        wrapped_key=base64.b64encode(sealed.wrapped_key).decode("ascii"),
        ciphertext=base64.b64encode(sealed.ciphertext).decode("ascii"),
        commitment=sealed.commitment.hex(),
    )


def unseal_face(
    material: bytes, sealed: SealedRegion, context: bytes, shape: tuple[int, ...], *, source: str
) -> np.ndarray:
    """The original pixels [h, w, 3] of a sealed region; `SealedDataError` (opaque) when anything was altered."""
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
    region = unseal_region(material, evidence, context)
    if len(region) != (y1 - y0) * (x1 - x0) * 3:
        raise SealedDataError() from None
    return np.frombuffer(region, dtype=np.uint8).reshape(y1 - y0, x1 - x0, 3)
