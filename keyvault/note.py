"""C2SP signed notes (c2sp.org/signed-note) with Ed25519: parse, sign, verify, and key encodings.

A note is UTF-8 text ending in a newline, a blank line, then one or more signature lines
``— <key name> <base64(4-byte key ID ‖ signature)>``. The key ID of a key is
``SHA-256(name ‖ 0x0A ‖ type ‖ public key)[:4]``; type ``0x01`` is a plain Ed25519 note signature
(the log's own), ``0x04`` a timestamped witness cosignature (c2sp.org/tlog-cosignature, in
``keyvault.checkpoint``). Keys travel in the encodings of Go's ``golang.org/x/mod/sumdb/note``,
which the C2SP ecosystem shares, so other tools read ours:

- verifier key: ``<name>+<8 hex digits of the key ID>+<base64(type ‖ 32-byte public key)>``
- signer key:   ``PRIVATE+KEY+<name>+<8 hex digits>+<base64(type ‖ 32-byte Ed25519 seed)>``

Parsing is strict (one byte form per note): a note that does not parse, or whose signature from a
known key does not verify, is refused with ``CheckpointError``. Signatures of unknown keys are
kept but never trusted, as the spec requires.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from keyvault import envelope
from keyvault.errors import CheckpointError

SIG_ED25519 = 0x01  # plain Ed25519 note signature
SIG_COSIGNATURE_V1 = 0x04  # timestamped Ed25519 cosignature (tlog-cosignature)
DASH = "\u2014"  # em dash that starts every signature line
MAX_SIGNATURES = 32  # the spec asks verifiers to accept at least 16
MAX_NOTE_BYTES = 16_384
_NAME_RE = re.compile(r"[^\s+]+")  # non-empty, no Unicode space, no plus
_HEX8_RE = re.compile(r"[0-9a-f]{8}")
_PRIVATE_PREFIX = "PRIVATE+KEY+"


def key_id(name: str, sig_type: int, public_raw: bytes) -> bytes:
    """The 4-byte key ID: ``SHA-256(name ‖ "\\n" ‖ type ‖ public key)[:4]``."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([sig_type]) + public_raw).digest()[:4]


def check_name(name: str) -> str:
    """Return ``name`` when it is a valid key name (non-empty, no spaces, no '+'); else ValueError."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ValueError(f"key name {name!r} must be non-empty without spaces or '+'")
    return name


@dataclass(frozen=True)
class Verifier:
    """A trusted public key: its name, signature type and raw 32-byte Ed25519 key."""

    name: str
    sig_type: int
    public_key: bytes

    def __post_init__(self) -> None:
        check_name(self.name)
        if len(self.public_key) != envelope.ED25519_KEY_BYTES:
            raise ValueError("an Ed25519 verifier key needs 32 bytes")

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.sig_type, self.public_key)

    def encode(self) -> str:
        """The verifier-key string ``name+hex(key ID)+base64(type ‖ key)``."""
        blob = base64.b64encode(bytes([self.sig_type]) + self.public_key).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{blob}"

    @classmethod
    def decode(cls, text: str) -> Verifier:
        """Parse a verifier-key string; ``CheckpointError`` naming what is wrong."""
        name, key_hash, raw = _split_key(text.strip(), "verifier key")
        verifier = cls(name, raw[0], raw[1:])
        if verifier.key_id.hex() != key_hash:
            raise CheckpointError(f"verifier key {name!r}: its key ID does not match its key")
        return verifier


def _split_key(text: str, what: str) -> tuple[str, str, bytes]:
    parts = text.split("+", 2)  # the base64 part may itself hold "+"
    if len(parts) != 3 or not _HEX8_RE.fullmatch(parts[1]):
        raise CheckpointError(f"not a {what} (expected name+<8 hex>+<base64>)")
    try:
        check_name(parts[0])
        raw = base64.b64decode(parts[2], validate=True)
    except (ValueError, binascii.Error):
        raise CheckpointError(f"not a {what}: bad name or base64") from None
    if len(raw) != 1 + envelope.ED25519_KEY_BYTES or raw[0] not in (SIG_ED25519, SIG_COSIGNATURE_V1):
        raise CheckpointError(f"not a {what}: expects an Ed25519 key of type 0x01 or 0x04")
    return parts[0], parts[1], raw


def encode_signer(name: str, sig_type: int, private_raw: bytes) -> str:
    """The signer-key string ``PRIVATE+KEY+name+hex(key ID)+base64(type ‖ seed)`` (keep it secret)."""
    public = envelope.public_key_of(private_raw)
    blob = base64.b64encode(bytes([sig_type]) + private_raw).decode("ascii")
    return f"{_PRIVATE_PREFIX}{check_name(name)}+{key_id(name, sig_type, public).hex()}+{blob}"


def decode_signer(text: str) -> tuple[Verifier, bytes]:
    """Parse a signer-key string into (its verifier, raw private seed); errors never echo the key."""
    if not text.startswith(_PRIVATE_PREFIX):
        raise CheckpointError("not a signer key (expected PRIVATE+KEY+name+<8 hex>+<base64>)")
    name, key_hash, raw = _split_key(text.strip()[len(_PRIVATE_PREFIX) :], "signer key")
    private = raw[1:]
    verifier = Verifier(name, raw[0], envelope.public_key_of(private))
    if verifier.key_id.hex() != key_hash:
        raise CheckpointError(f"signer key {name!r}: its key ID does not match its key")
    return verifier, private


@dataclass(frozen=True)
class Signature:
    """One signature line: the key name, the 4-byte key ID and the signature bytes after it."""

    name: str
    key_id: bytes
    data: bytes  # Ed25519 signature (0x01) or timestamp ‖ signature (0x04)

    def line(self) -> str:
        return f"{DASH} {self.name} {base64.b64encode(self.key_id + self.data).decode('ascii')}\n"

    def by(self, verifier: Verifier) -> bool:
        """True when this line claims to come from ``verifier`` (same name and key ID)."""
        return self.name == verifier.name and self.key_id == verifier.key_id


@dataclass(frozen=True)
class Note:
    """A parsed signed note: the text (ending in a newline) and its signatures, in order."""

    text: str
    signatures: tuple[Signature, ...]

    def encode(self) -> str:
        """The note's one byte form: text, blank line, signature lines."""
        return self.text + "\n" + "".join(s.line() for s in self.signatures)

    def with_signature(self, signature: Signature) -> Note:
        """This note with one more signature line (an existing line of the same key is replaced)."""
        kept = tuple(s for s in self.signatures if (s.name, s.key_id) != (signature.name, signature.key_id))
        return Note(self.text, (*kept, signature))


def parse(data: str | bytes) -> Note:
    """Parse a signed note strictly; ``CheckpointError`` naming the first problem."""
    if isinstance(data, bytes):
        if len(data) > MAX_NOTE_BYTES:
            raise CheckpointError(f"the note is larger than {MAX_NOTE_BYTES} bytes")
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise CheckpointError("the note is not valid UTF-8") from None
    if len(data) > MAX_NOTE_BYTES:
        raise CheckpointError(f"the note is larger than {MAX_NOTE_BYTES} bytes")
    if any(ch < " " and ch != "\n" for ch in data):
        raise CheckpointError("the note holds a control character other than newline")
    split = data.rfind("\n\n")
    if split < 0 or not data.endswith("\n"):
        raise CheckpointError("not a signed note: no blank line before the signatures, or no final newline")
    text, lines = data[: split + 1], data[split + 2 : -1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise CheckpointError(f"the note carries more than {MAX_SIGNATURES} signatures")
    signatures = []
    for number, line in enumerate(lines, start=1):
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != DASH or not _NAME_RE.fullmatch(parts[1]):
            raise CheckpointError(f"signature line {number} is malformed (expected '— <name> <base64>')")
        try:
            raw = base64.b64decode(parts[2], validate=True)
        except binascii.Error:
            raw = b""
        if len(raw) < 5 or base64.b64encode(raw).decode("ascii") != parts[2]:
            raise CheckpointError(
                f"signature line {number} ({parts[1]}) is not canonical base64 of a signature"
            )
        signatures.append(Signature(parts[1], raw[:4], raw[4:]))
    return Note(text, tuple(signatures))


def sign(text: str, name: str, private_raw: bytes) -> Note:
    """A note of ``text`` signed by an Ed25519 key (type 0x01) named ``name``."""
    if not text.endswith("\n") or "\n\n" in text or text.startswith("\n"):
        raise ValueError("note text must end in a newline and hold no blank line")
    public = envelope.public_key_of(private_raw)
    signature = envelope.sign(private_raw, text.encode("utf-8"))
    return Note(text, (Signature(check_name(name), key_id(name, SIG_ED25519, public), signature),))


def verify(note: Note, verifier: Verifier) -> None:
    """Raise ``CheckpointError`` unless ``note`` carries a valid type-0x01 signature by ``verifier``."""
    if verifier.sig_type != SIG_ED25519:
        raise ValueError("verify() checks plain Ed25519 note signatures (type 0x01)")
    mine = [s for s in note.signatures if s.by(verifier)]
    if not mine:
        raise CheckpointError(
            f"the note carries no signature by {verifier.name} (key {verifier.key_id.hex()})"
        )
    for signature in mine:
        if not envelope.verify_signature(verifier.public_key, signature.data, note.text.encode("utf-8")):
            raise CheckpointError(
                f"the signature by {verifier.name} does not verify: the note was altered or forged"
            )
