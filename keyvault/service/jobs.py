"""File-carrying jobs of the vault service: the work that needs key material runs where the keys are.

Anonymizing and restoring need a key's material (the flow's condition, the sealing key), which never
leaves the service, so the files travel instead. A job travels as one ZIP archive each way, stored
without compression (images and videos are compressed already): ``job.json`` holds the parameters
going in and the result coming back, the files lie under ``files/``. The service unpacks an upload into
a fresh private folder (0700) with every name checked (relative, no ``..``, no link, bounded count and
size), runs the registered ``JobRunner`` as the token's user, answers with the outputs and deletes the
folder whatever happens. keyvault knows nothing of images: whoever starts the service registers the
runners (``ifadit vault serve`` registers ifadit's anonymize and restore).
"""

from __future__ import annotations

import json
import os
import stat
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any, Protocol

from keyvault.service.errors import BadJobArchive

if TYPE_CHECKING:
    from keyvault.vault import Vault

JOB_DOCUMENT = "job.json"
FILES_PREFIX = "files/"
DEFAULT_MAX_JOB_BYTES = 512 << 20  # what one job may carry each way (files, uncompressed)
MAX_JOB_FILES = 10_000
MAX_DOCUMENT_BYTES = 4 << 20
MAX_NAME_DEPTH = 16
_COPY_CHUNK = 1 << 20


class JobRunner(Protocol):
    """Runs one job inside the service: reads ``inputs``, writes ``outputs``, returns the JSON result."""

    def __call__(
        self, vault: Vault, inputs: Path, outputs: Path, params: dict[str, Any]
    ) -> dict[str, Any]: ...


def check_name(name: str) -> PurePosixPath:
    """``name`` as a safe relative path (``BadJobArchive`` for absolute paths, ``..``, hidden or odd parts)."""
    path = PurePosixPath(name)
    bad = (
        not name
        or "\\" in name
        or "\x00" in name
        or path.is_absolute()
        or len(path.parts) > MAX_NAME_DEPTH
        or any(part in ("", ".", "..") for part in path.parts)
    )
    if bad:
        raise BadJobArchive(f"job archive: refused file name {name!r}")
    return path


def folder_files(folder: Path) -> dict[str, Path]:
    """Every regular file below ``folder`` by its relative POSIX name (links are refused, not followed)."""
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            raise BadJobArchive(f"job output {path.name!r} is a link: refused")
        if path.is_file():
            found[path.relative_to(folder).as_posix()] = path
    return found


def pack(target: IO[bytes], document: Mapping[str, Any], files: Mapping[str, Path]) -> None:
    """Write the archive of ``document`` (as ``job.json``) and ``files`` (by relative name) to ``target``."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        archive.writestr(JOB_DOCUMENT, json.dumps(dict(document), ensure_ascii=False))
        for name, path in files.items():
            check_name(name)
            archive.write(path, FILES_PREFIX + name)


def unpack(source: IO[bytes], folder: Path, *, max_bytes: int = DEFAULT_MAX_JOB_BYTES) -> dict[str, Any]:
    """Extract an archive's files into ``folder`` (created 0700) and return its document.

    ``BadJobArchive`` for anything but a ZIP with one ``job.json`` object and regular files under
    ``files/`` with safe names, at most ``MAX_JOB_FILES`` of them and ``max_bytes`` in all.
    """
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(source) as archive:
            infos = archive.infolist()
            if len(infos) > MAX_JOB_FILES + 1:
                raise BadJobArchive(f"job archive: more than {MAX_JOB_FILES} files")
            document: dict[str, Any] | None = None
            budget = max_bytes
            for info in infos:
                if info.filename == JOB_DOCUMENT:
                    document = _document(archive, info)
                elif not info.is_dir():
                    budget -= _extract(archive, info, folder, budget)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError):
        raise BadJobArchive("job archive: not a readable ZIP archive") from None
    if document is None:
        raise BadJobArchive(f"job archive: no {JOB_DOCUMENT}")
    return document


def _document(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> dict[str, Any]:
    if info.file_size > MAX_DOCUMENT_BYTES:
        raise BadJobArchive(f"job archive: {JOB_DOCUMENT} is larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        document = json.loads(archive.read(info))
    except (ValueError, UnicodeDecodeError):
        raise BadJobArchive(f"job archive: {JOB_DOCUMENT} is not JSON") from None
    if not isinstance(document, dict):
        raise BadJobArchive(f"job archive: {JOB_DOCUMENT} is not a JSON object")
    return document


def _extract(archive: zipfile.ZipFile, info: zipfile.ZipInfo, folder: Path, budget: int) -> int:
    """Copy one member to its checked path below ``folder``; its size (counted, not trusted)."""
    if not info.filename.startswith(FILES_PREFIX):
        raise BadJobArchive(f"job archive: unexpected member {info.filename!r}")
    relative = check_name(info.filename[len(FILES_PREFIX) :])
    kind = stat.S_IFMT(info.external_attr >> 16)  # 0 when the archive records no file type
    if kind and kind != stat.S_IFREG:
        raise BadJobArchive(f"job archive: {info.filename!r} is not a regular file")
    if info.file_size > budget:
        raise BadJobArchive("job archive: larger than this service accepts")
    target = folder.joinpath(*relative.parts)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    written = 0
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        descriptor = os.open(target, flags, 0o600)
    except FileExistsError:
        raise BadJobArchive(f"job archive: {info.filename!r} appears twice") from None
    with os.fdopen(descriptor, "wb") as out, archive.open(info) as member:
        while chunk := member.read(_COPY_CHUNK):
            written += len(chunk)
            if written > budget:
                raise BadJobArchive("job archive: larger than this service accepts")
            out.write(chunk)
    return written
