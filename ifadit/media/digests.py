"""SHA-256 digests of files, of ordered digest lists and of a video's decoded frames.

What manifests, restore requests and audit entries name content by; plain hashlib, so that a workstation
computing a request's listing loads no image code.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

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
