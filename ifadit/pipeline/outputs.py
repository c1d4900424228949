"""Writing results in two phases (pixels, then the signed manifest), and the digests that bind them.

`write_pixels` writes an image without manifest and returns the digest of the pixels a reader will decode
(lossy JPEG/WebP are read back). `embed_manifest` later adds the signed manifest WITHOUT re-encoding: a PNG
gets an iTXt chunk inserted after its header, a JPEG APP11 segments inserted after SOI/APP0, anything else
(video, WebP, a JPEG manifest too large for APP11) a sidecar. The pixels never change between the two
phases, so the digest (and any sealed region's context bound to it) stays valid. Video digests chain the
digests of every decoded frame.

Audit entries name original content (an anonymize run's inputs, a restore's output) only by a keyed
digest (`keyvault.digests`): the vault's HMAC of the `list_digest` of the files' SHA-256s, in order.
`keyed_files_digest` recomputes it for files a vault user holds.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ifadit.media.digests import file_sha256, list_digest
from ifadit.media.files import atomic_write_bytes, insert_jpeg_app11
from ifadit.media.image import read_image, write_image
from ifadit.media.manifest import Manifest, embedding_for, pixels_digest, sidecar_path
from ifadit.media.metadata import KeptMetadata
from keyvault import auditor

if TYPE_CHECKING:
    from keyvault import Vault

LOSSLESS_IMAGE_SUFFIXES = frozenset({".png"})
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def keyed_list_digest(vault: Vault, sha256s: Iterable[str]) -> str:
    """What an audit entry records for original files with these SHA-256s, in order: ``hmac-sha256:<hex>``."""
    return vault.keyed_digest(list_digest(sha256s))


def keyed_files_digest(vault: Vault, paths: Sequence[str | os.PathLike[str]]) -> str:
    """Recompute, for files a vault user holds (in the run's order), the keyed digest an audit entry records.

    One file gives a single-file run's `inputs` or a restore's `output`. The files are hashed before the
    vault is touched; the check itself is audited (`audit.digest`, any role), so who confirmed a file shows.
    """
    if not paths:
        raise ValueError("name at least one file to digest")
    sha256s = [file_sha256(path) for path in paths]
    return auditor.keyed_digest(vault, list_digest(sha256s), files=len(sha256s))


def write_sidecar(path: Path, manifest: Manifest) -> None:
    """Write `manifest` as the sidecar of `path`, atomically."""
    atomic_write_bytes(sidecar_path(path), manifest.to_json().encode("utf-8"))


def write_pixels(path: Path, pixels: np.ndarray, metadata: KeptMetadata | None = None) -> str:
    """Write `pixels` to `path` (format from the suffix; no metadata but `metadata`, kept with
    `--keep-metadata`); the digest of what a reader decodes."""
    kept = metadata or KeptMetadata()
    write_image(path, pixels, exif=kept.exif, icc_profile=kept.icc_profile)
    if path.suffix.lower() in LOSSLESS_IMAGE_SUFFIXES:
        return pixels_digest(pixels)
    return pixels_digest(read_image(path))


def png_itxt_chunk(keyword: str, text: str) -> bytes:
    """A compressed PNG iTXt chunk (length, type, data, CRC) holding UTF-8 `text` under `keyword`."""
    data = keyword.encode("latin-1") + b"\0\x01\x00" + b"\0" + b"\0" + zlib.compress(text.encode("utf-8"))
    return len(data).to_bytes(4, "big") + b"iTXt" + data + zlib.crc32(b"iTXt" + data).to_bytes(4, "big")


def insert_png_itxt(png: bytes, keyword: str, text: str) -> bytes:
    """`png` with an iTXt chunk inserted right after its IHDR chunk (pixels untouched)."""
    if png[:8] != PNG_SIGNATURE or png[12:16] != b"IHDR":
        raise ValueError("not a PNG stream starting with IHDR")
    end_of_ihdr = 8 + 4 + 4 + int.from_bytes(png[8:12], "big") + 4
    return png[:end_of_ihdr] + png_itxt_chunk(keyword, text) + png[end_of_ihdr:]


def embed_manifest(path: Path, manifest: Manifest) -> None:
    """Add `manifest` to the file `path` written by `write_pixels` (or a video): embedded, else a sidecar."""
    embedded = embedding_for(path, manifest) if path.is_file() else {}
    if "extra_png_text" in embedded:
        ((keyword, text),) = embedded["extra_png_text"].items()
        atomic_write_bytes(path, insert_png_itxt(path.read_bytes(), keyword, text))
    elif "jpeg_app11" in embedded:
        atomic_write_bytes(path, insert_jpeg_app11(path.read_bytes(), embedded["jpeg_app11"]))
    else:
        write_sidecar(path, manifest)
