"""Checkpoints (c2sp.org/tlog-checkpoint), witness cosignatures (tlog-cosignature), and the file they go to.

Every tree head a vault signs is also published as a checkpoint: a signed note whose text is::

    ifadit.vault/<vault id>        origin: the log's identity, also the vault's key name
    <tree size>                    decimal, no leading zeros
    <base64 RFC 6962 root>         the same root the tree head signs

signed by the vault's audit Ed25519 key (note type 0x01; the note text never starts with the
tree-head or detached-signature domains, so no signature can pass for another kind). Checkpoints
carry no time and no extension lines (the spec advises against them); when a checkpoint was made
is stated by the witnesses that cosign it. A witness cosignature is a type-0x04 line over
``"cosignature/v1\\ntime <POSIX seconds>\\n" ‖ note text`` whose bytes are key ID ‖ u64 big-endian
timestamp ‖ Ed25519 signature.

The checkpoint file lives outside the database (``IFADIT_CHECKPOINTS``, else beside a SQLite file
as ``<db>.checkpoints``): signed notes one after another, each followed by a blank line, so
``cat`` shows them and any C2SP tool reads each one. It is created 0600 and each checkpoint is
appended with one ``write`` under an exclusive ``flock`` and fsynced; a reader takes the newest
complete record, so a torn final write (a crash) costs that record only.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from keyvault import envelope, note
from keyvault.errors import CheckpointError

ORIGIN_PREFIX = "ifadit.vault/"
COSIGNATURE_HEADER = "cosignature/v1\n"
TAIL_BYTES = 65_536  # how much of the checkpoint file's end a reader scans for the newest record
_SIZE_RE = re.compile(r"0|[1-9][0-9]{0,18}")
_RECORD_RE = re.compile(r"(?m)^([^\n\u2014][^\n]*\n[0-9]+\n[A-Za-z0-9+/=]+\n)\n((?:\u2014 [^\n]+\n)+)\n")


def origin_for(vault_id: str) -> str:
    """The checkpoint origin (and key name) of a vault: ``ifadit.vault/<vault id>``."""
    return note.check_name(ORIGIN_PREFIX + vault_id)


def log_verifier(vault_id: str, public_raw: bytes) -> note.Verifier:
    """The verifier of a vault's checkpoints: its origin as key name and its audit public key."""
    return note.Verifier(origin_for(vault_id), note.SIG_ED25519, bytes(public_raw))


@dataclass(frozen=True)
class Checkpoint:
    """The three lines of a checkpoint: which log, how many entries, and their Merkle root."""

    origin: str
    size: int
    root: bytes  # 32-byte RFC 6962 root

    def text(self) -> str:
        """The note text (three lines, each ending in a newline)."""
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode('ascii')}\n"

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        """Parse note text strictly; ``CheckpointError`` naming the bad line."""
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "" or any(not line for line in lines[:-1]):
            raise CheckpointError("not a checkpoint: needs origin, size and root lines, each non-empty")
        if len(lines) > 4:
            raise CheckpointError("the checkpoint carries extension lines, which ifadit does not issue")
        origin, size, root_b64 = lines[:3]
        if not _SIZE_RE.fullmatch(size):
            raise CheckpointError(
                f"checkpoint size line {size[:24]!r} is not a decimal without leading zeros"
            )
        try:
            root = base64.b64decode(root_b64, validate=True)
        except binascii.Error:
            root = b""
        if len(root) != 32 or base64.b64encode(root).decode("ascii") != root_b64:
            raise CheckpointError("checkpoint root line is not canonical base64 of 32 bytes")
        return cls(origin, int(size), root)


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint whose log signature verified, with the note it came in (cosignatures included)."""

    checkpoint: Checkpoint
    note: note.Note

    @property
    def size(self) -> int:
        return self.checkpoint.size

    def encode(self) -> str:
        return self.note.encode()


def sign_checkpoint(private_raw: bytes, vault_id: str, size: int, root: bytes) -> str:
    """The vault's signed checkpoint note for ``size`` entries with Merkle root ``root``."""
    origin = origin_for(vault_id)
    return note.sign(Checkpoint(origin, size, bytes(root)).text(), origin, private_raw).encode()


def open_checkpoint(data: str | bytes, verifier: note.Verifier) -> SignedCheckpoint:
    """Parse a checkpoint note and verify the log's signature; ``CheckpointError`` when either fails."""
    parsed = note.parse(data)
    checkpoint = Checkpoint.from_text(parsed.text)
    if checkpoint.origin != verifier.name:
        raise CheckpointError(
            f"the checkpoint is from log {checkpoint.origin[:80]!r}, not {verifier.name!r}",
            hint="it belongs to another vault",
        )
    note.verify(parsed, verifier)
    return SignedCheckpoint(checkpoint, parsed)


# ---------------------------------------------------------------- cosignatures (tlog-cosignature v1)


def cosignature_message(text: str, timestamp: int) -> bytes:
    """What an Ed25519 cosignature/v1 signs: header, time line, then the note text."""
    return f"{COSIGNATURE_HEADER}time {timestamp}\n{text}".encode()


def cosign(
    signed: SignedCheckpoint, witness: note.Verifier, private_raw: bytes, timestamp: int
) -> SignedCheckpoint:
    """``signed`` with the witness's timestamped cosignature line added (replacing an older one of it)."""
    if witness.sig_type != note.SIG_COSIGNATURE_V1:
        raise ValueError("a witness key has signature type 0x04")
    if not 0 <= timestamp < 2**63:
        raise ValueError("a cosignature timestamp lies between 0 and 2^63 - 1")
    signature = envelope.sign(private_raw, cosignature_message(signed.note.text, timestamp))
    line = note.Signature(witness.name, witness.key_id, timestamp.to_bytes(8, "big") + signature)
    return SignedCheckpoint(signed.checkpoint, signed.note.with_signature(line))


def cosigned_at(signed: SignedCheckpoint, witness: note.Verifier) -> int:
    """The POSIX time of ``witness``'s valid cosignature on ``signed``; ``CheckpointError`` if none or bad."""
    mine = [s for s in signed.note.signatures if s.by(witness)]
    if not mine:
        raise CheckpointError(f"the checkpoint carries no cosignature by witness {witness.name}")
    for line in mine:
        timestamp = int.from_bytes(line.data[:8], "big") if len(line.data) == 72 else -1
        if (
            timestamp < 0
            or timestamp >= 2**63
            or not envelope.verify_signature(
                witness.public_key, line.data[8:], cosignature_message(signed.note.text, timestamp)
            )
        ):
            raise CheckpointError(
                f"the cosignature by witness {witness.name} does not verify (altered or forged)"
            )
    return int.from_bytes(mine[-1].data[:8], "big")


def describe_time(timestamp: int) -> str:
    """A cosignature time for messages: ``2026-12-07T13:05:00Z``."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- files


def write_private(path: Path, text: str, *, overwrite: bool = False) -> None:
    """Write a small file 0600 atomically (temporary file in the same folder, fsync, rename)."""
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists: refusing to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def append(path: Path, encoded_note: str) -> None:
    """Append one signed note and a blank line to ``path`` (created 0600), atomically and durably."""
    record = encoded_note.encode("utf-8") + b"\n"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        end = os.lseek(fd, 0, os.SEEK_END)
        if end and os.pread(fd, 2, max(end - 2, 0)) != b"\n\n":
            record = b"\n\n" + record  # after a torn record: start the new one on a fresh line
        os.write(fd, record)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_all(path: Path) -> list[str]:
    """Every complete checkpoint note in a checkpoint file (or in a file holding one note), oldest first."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the checkpoint file ({exc.strerror})") from None
    return _records(data, path)


def read_latest(path: Path) -> str | None:
    """The newest complete checkpoint note in the file, or None when the file does not exist or is empty."""
    try:
        with path.open("rb") as handle:
            end = handle.seek(0, os.SEEK_END)
            for window in (TAIL_BYTES // 16, TAIL_BYTES):  # one record is a few hundred bytes
                handle.seek(max(end - window, 0))
                data = handle.read()
                if not data.strip():
                    return None
                if window >= end or _RECORD_RE.search(_as_text(data)):
                    break
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the checkpoint file ({exc.strerror})") from None
    return _records(data, path)[-1]


def _as_text(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace")  # a window cut inside a character: records stay intact
    return text if text.endswith("\n\n") else text + "\n"


def _records(data: bytes, path: Path) -> list[str]:
    text = _as_text(data)  # a single note as `audit checkpoint` prints it lacks the separating blank line
    found = [m.group(1) + "\n" + m.group(2) for m in _RECORD_RE.finditer(text)]
    if not found:
        raise CheckpointError(f"{path}: holds no complete checkpoint note")
    return found


def open_all(notes: Sequence[str], verifier: note.Verifier) -> list[SignedCheckpoint]:
    """Open every note with the log's verifier (``CheckpointError`` on the first bad one), sorted by size."""
    opened = []
    for number, text in enumerate(notes, start=1):
        try:
            opened.append(open_checkpoint(text, verifier))
        except CheckpointError as exc:
            where = f"checkpoint {number}: " if len(notes) > 1 else ""
            raise CheckpointError(f"{where}{exc.args[0]}", hint=exc.hint) from None
    return sorted(opened, key=lambda c: c.size)
