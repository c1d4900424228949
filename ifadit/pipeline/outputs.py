"""Writing results with their manifest, and the digests that bind manifests and audit entries to files.

Lossless formats (PNG) are digested as computed. Lossy formats (JPEG, WebP) are written once without a
manifest and read back, so the manifest's `pixels_sha256` (and any sealed region's context) describes the
pixels a reader will decode; the manifest then goes into the JPEG's APP11 segment by inserting bytes (the
pixels stay as written) or into a sidecar. Video digests chain the digests of every decoded frame.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from ifadit.media.image import atomic_write_bytes, insert_jpeg_app11, read_image, write_image
from ifadit.media.manifest import Manifest, embedding_for, pixels_digest, sidecar_path

LOSSLESS_IMAGE_SUFFIXES = frozenset({".png"})
_CHUNK = 1 << 20


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex of a file's bytes (a folder: of its files' names and digests, in name order)."""
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_dir():
        for child in sorted(path.iterdir()):
            digest.update(f"{child.name}\0{file_sha256(child)}\n".encode())
        return digest.hexdigest()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def list_digest(digests: Iterable[str]) -> str:
    """SHA-256 of a list of hex digests in order (what an audit entry stores for a batch)."""
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()


def frames_digest(frame_digests: Iterable[str]) -> str:
    """A video's pixel digest: SHA-256 over the `pixels_digest` of each decoded frame, in order."""
    digest = hashlib.sha256(b"ifadit-frames/1\n")
    for frame in frame_digests:
        digest.update(frame.encode() + b"\n")
    return digest.hexdigest()


def write_sidecar(path: Path, manifest: Manifest) -> None:
    """Write `manifest` as the sidecar of `path`, atomically."""
    atomic_write_bytes(sidecar_path(path), manifest.to_json().encode("utf-8"))


def write_image_with_manifest(
    path: Path, pixels: np.ndarray, make_manifest: Callable[[str], Manifest]
) -> tuple[str, Manifest]:
    """Write `pixels` to `path` with the manifest `make_manifest(pixels_sha256)`; returns the digest and manifest.

    The digest is of the pixels as a reader decodes the written file (lossy formats are read back).
    """
    if path.suffix.lower() in LOSSLESS_IMAGE_SUFFIXES:
        digest = pixels_digest(pixels)
        manifest = make_manifest(digest)
        write_image(path, pixels, **embedding_for(path, manifest))
        return digest, manifest
    write_image(path, pixels)
    digest = pixels_digest(read_image(path))
    manifest = make_manifest(digest)
    embedded = embedding_for(path, manifest)
    if "jpeg_app11" in embedded:
        atomic_write_bytes(path, insert_jpeg_app11(path.read_bytes(), embedded["jpeg_app11"]))
    else:
        write_sidecar(path, manifest)
    return digest, manifest
