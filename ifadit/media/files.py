"""Byte-level file work that decodes no pixels: atomic writes, and the JPEG APP11 segments that carry manifests.

Kept apart from `ifadit.media.image` so that reading a manifest, writing a report or planning a job
loads neither numpy nor an image decoder (a workstation's command through the vault service starts in
a fraction of a second).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ifadit.errors import InputError

DEFAULT_MAX_PIXELS = 100_000_000  # 100 MP: above every camera still we expect, ~300 MB as RGB
APP11_TAG = b"IFADIT\x00"  # identifies our APP11 segments among others (JUMBF, JPEG XT)
_APP11_CHUNK = 0xFFFF - 2 - len(APP11_TAG) - 2  # payload bytes per segment after length, tag and index


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, fsync, rename over `path`; nothing left on failure."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"{path}: output folder {folder} does not exist")
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o666 & ~_UMASK)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass  # some file systems refuse fsync on directories; the rename itself has happened
    finally:
        os.close(dir_fd)


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import: os.umask is process-wide and not thread-safe to probe later


def insert_jpeg_app11(jpeg: bytes, payload: bytes) -> bytes:
    """Insert `payload` as tagged APP11 segments after SOI and any JFIF APP0 segment."""
    if jpeg[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG stream (no SOI marker)")
    pos = 2
    if jpeg[2:4] == b"\xff\xe0":
        pos = 4 + int.from_bytes(jpeg[4:6], "big")
    chunks = [payload[i : i + _APP11_CHUNK] for i in range(0, len(payload), _APP11_CHUNK)] or [b""]
    if len(chunks) > 0xFFFF:
        raise ValueError(f"APP11 payload of {len(payload)} bytes is too large")
    segments = b"".join(
        b"\xff\xeb"
        + (2 + len(APP11_TAG) + 2 + len(chunk)).to_bytes(2, "big")
        + APP11_TAG
        + index.to_bytes(2, "big")
        + chunk
        for index, chunk in enumerate(chunks)
    )
    return jpeg[:pos] + segments + jpeg[pos:]


def read_jpeg_app11(path: str | os.PathLike[str]) -> bytes | None:
    """The payload written by `write_image(..., jpeg_app11=...)`, or None when the JPEG carries none."""
    path = Path(path)
    data = path.read_bytes()
    if data[:2] != b"\xff\xd8":
        raise InputError(f"{path}: not a JPEG file")
    pos, parts = 2, list[bytes]()
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise InputError(f"{path}: corrupt JPEG marker structure at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xDA or marker == 0xD9:  # start of scan / end of image: no more header segments
            break
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2 or pos + 2 + length > len(data):
            raise InputError(f"{path}: truncated JPEG segment at byte {pos}")
        body = data[pos + 4 : pos + 2 + length]
        if marker == 0xEB and body.startswith(APP11_TAG):
            index = int.from_bytes(body[len(APP11_TAG) : len(APP11_TAG) + 2], "big")
            if index != len(parts):
                raise InputError(
                    f"{path}: APP11 segments out of order (segment {index}, expected {len(parts)})"
                )
            parts.append(body[len(APP11_TAG) + 2 :])
        pos += 2 + length
    return b"".join(parts) if parts else None
