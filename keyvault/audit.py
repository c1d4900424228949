"""Audit log model without SQL: entries, canonical bytes, hash chain, signed tree heads, export bundle.

Entry canonical form (what is hashed, stored and exported): the entry's 13 fields as one JSON
object, keys sorted, separators ``,`` and ``:`` without spaces, non-ASCII text as raw UTF-8
(``json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=False)``), no floats, no
NaN, no raw newline (JSON escapes control characters). ``from_canonical`` accepts only bytes that
re-encode identically, so every entry has exactly one byte form. The leaf hash of an entry is
RFC 6962's ``SHA-256(0x00 ‖ canonical bytes)``; ``prev_hash`` holds the previous entry's leaf hash
in hex (``GENESIS_HASH``, 64 zeros, for seq 1), so the entries form a hash chain *and* the leaves
of a Merkle tree whose roots are signed in tree heads (Ed25519 over ``TreeHead.signing_bytes()``).

Bundle format ``ifadit-audit-bundle/1`` (JSON Lines, UTF-8, each line ends with ``\\n``)::

    line 1      {"format":"ifadit-audit-bundle/1","public_key":"<base64 raw Ed25519>","vault_id":"…"}
    lines 2..   one entry per line, exactly its canonical bytes, seq 1, 2, 3, … in order
    then        {"tree_head":{"root":"<hex>","signature":"<base64>","size":N,"time":"…","vault_id":"…"}}
                one line per signed tree head, smallest size first

A reader streams it top to bottom; ``keyvault.verify.verify_bundle`` checks it offline. An excerpt
(``ifadit-audit-excerpt/1``, ``keyvault.excerpt``) has the same layout with a filter in its header and
the entries the filter does not select replaced by their hashes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from keyvault import envelope, merkle
from keyvault.digests import is_digest
from keyvault.errors import AuditVerificationError

GENESIS_HASH = "0" * 64  # prev_hash of entry 1
OUTCOMES = ("ok", "refused", "failed")
BUNDLE_FORMAT = "ifadit-audit-bundle/1"
EXCERPT_FORMAT = "ifadit-audit-excerpt/1"  # some entries only as hashes (keyvault.excerpt)
TREE_HEAD_DOMAIN = b"ifadit-tree-head/1\n"  # prefix of the signed bytes: a head signature signs nothing else
MAX_DETAILS_BYTES = 4096  # details are small context values, never payloads

_TIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
_HEX64_RE = re.compile(r"[0-9a-f]{64}")
_ACTION_RE = re.compile(r"[a-z][a-z0-9_.:-]{0,63}")


def utc_timestamp(moment: datetime) -> str:
    """Canonical entry time: UTC, microseconds, 'Z' suffix (``2026-11-25T11:03:42.000000Z``)."""
    if moment.tzinfo is None:
        raise ValueError("audit times must be timezone-aware datetimes")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _check_time(value: object, name: str) -> None:
    if not isinstance(value, str) or not _TIME_RE.fullmatch(value):
        raise ValueError(f"{name} must be a UTC time like 2026-01-31T12:00:00.000000Z")
    datetime.fromisoformat(value)  # rejects 2026-02-30 and the like


def _check_text(value: object, name: str, *, optional: bool) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or (not optional and not value):
        raise TypeError(f"{name} must be {'a string or None' if optional else 'a non-empty string'}")
    value.encode("utf-8")  # rejects lone surrogates, which have no UTF-8 form


def _check_json_value(value: object, name: str) -> None:
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, str):
        value.encode("utf-8")  # rejects lone surrogates
        return
    if isinstance(value, list):
        for item in value:
            _check_json_value(item, name)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{name} keys must be strings")
            _check_json_value(item, name)
        return
    raise TypeError(
        f"{name} holds a {type(value).__name__}: only None, bool, int, str, list and dict are allowed"
    )


def entry_time(canonical: bytes) -> str | None:
    """An entry's time read by position from its canonical bytes (``time`` is the last key); None if absent."""
    if canonical[-38:-29] != b',"time":"' or not canonical.endswith(b'"}'):
        return None
    value = canonical[-29:-2].decode("ascii", errors="replace")
    return value if _TIME_RE.fullmatch(value) else None


def b64decode_strict(text: object) -> bytes:
    """Decode standard base64, accepting only the one canonical spelling (no stray bits, no whitespace)."""
    if not isinstance(text, str):
        raise ValueError("base64 text must be a string")
    data = base64.b64decode(text, validate=True)
    if base64.b64encode(data).decode("ascii") != text:
        raise ValueError("base64 text is not in canonical form")
    return data


def _canonical_json(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


@dataclass(frozen=True, kw_only=True)
class AuditEntry:
    """One audit record. Never holds key material, passphrases or anything derived from them."""

    seq: int  # 1, 2, 3, … without gaps
    time: str  # UTC, see utc_timestamp()
    actor: str | None = None  # acting user name; None for the system or an unknown user
    role: str | None = None  # role the actor acted in
    action: str  # dotted verb such as "key.issue", "vault.init", "unlock"
    outcome: str  # "ok" | "refused" | "failed"
    key_handle: str | None = None  # opaque kh_… handle
    key_version: int | None = None  # 1, 2, … when a key version is involved
    case_id: str | None = None
    reason: str | None = None
    digests: dict[str, str] = field(default_factory=dict)  # name -> SHA-256 hex of public content, or
    # "hmac-sha256:<hex>" (keyvault.digests) of original content
    details: dict[str, Any] = field(default_factory=dict)  # small JSON context, never secrets
    prev_hash: str  # hex leaf hash of entry seq-1; GENESIS_HASH for seq 1

    def __post_init__(self) -> None:
        if type(self.seq) is not int or self.seq < 1:
            raise ValueError("seq must be an integer >= 1")
        _check_time(self.time, "time")
        for name in ("actor", "role", "key_handle", "case_id", "reason"):
            _check_text(getattr(self, name), name, optional=True)
        if not isinstance(self.action, str) or not _ACTION_RE.fullmatch(self.action):
            raise ValueError("action must be a lower-case dotted verb such as 'key.issue'")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}")
        if self.key_version is not None and (type(self.key_version) is not int or self.key_version < 1):
            raise ValueError("key_version must be an integer >= 1 or None")
        if not isinstance(self.digests, dict) or not all(
            isinstance(k, str) and is_digest(v) for k, v in self.digests.items()
        ):
            raise ValueError(
                "digests must map names to lower-case SHA-256 hex strings or 'hmac-sha256:' keyed digests"
            )
        if not isinstance(self.details, dict):
            raise TypeError("details must be a dict")
        _check_json_value(self.details, "details")
        if self.details and len(_canonical_json(self.details)) > MAX_DETAILS_BYTES:
            raise ValueError(f"details exceed {MAX_DETAILS_BYTES} bytes: keep payloads out of the audit log")
        if not isinstance(self.prev_hash, str) or not _HEX64_RE.fullmatch(self.prev_hash):
            raise ValueError("prev_hash must be 64 lower-case hex characters")

    def to_dict(self) -> dict[str, Any]:
        """All fields as a plain dict (copies of digests and details)."""
        data = {name: getattr(self, name) for name in _ENTRY_FIELDS}
        data["digests"] = dict(self.digests)
        data["details"] = json.loads(_canonical_json(self.details))
        return data

    def canonical_bytes(self) -> bytes:
        """The one byte form of this entry (see the module docstring)."""
        return _canonical_json({name: getattr(self, name) for name in _ENTRY_FIELDS})

    def leaf_hash(self) -> bytes:
        """RFC 6962 leaf hash of the canonical bytes (32 bytes); its hex is the next entry's prev_hash."""
        return merkle.leaf_hash(self.canonical_bytes())

    @classmethod
    def from_canonical(cls, data: bytes) -> AuditEntry:
        """Parse and validate canonical bytes; raise AuditVerificationError naming the problem."""
        seq = None
        try:
            obj = json.loads(
                data.decode("utf-8"),
                object_pairs_hook=_no_duplicates,
                parse_float=_no_float,
                parse_constant=_no_float,
            )
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
            seq = obj.get("seq") if type(obj.get("seq")) is int else None
            if obj.keys() != _ENTRY_FIELDS:
                missing, extra = sorted(_ENTRY_FIELDS - set(obj)), sorted(set(obj) - _ENTRY_FIELDS)
                raise ValueError(f"fields missing {missing} / unexpected {extra}")
            entry = cls(**obj)
        except (ValueError, TypeError, RecursionError) as exc:
            raise AuditVerificationError(f"audit entry is malformed: {exc}", seq=seq) from None
        if entry.canonical_bytes() != data:
            raise AuditVerificationError("audit entry is not in canonical form", seq=entry.seq)
        return entry


_ENTRY_FIELDS = frozenset(f.name for f in fields(AuditEntry))


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate JSON key")
    return result


def _no_float(text: str) -> Any:
    raise ValueError(f"non-integer number {text!r}")


def chain_next(previous: AuditEntry | None, **values: Any) -> AuditEntry:
    """The entry that follows ``previous`` (or entry 1): fills ``seq`` and ``prev_hash``."""
    if previous is None:
        return AuditEntry(seq=1, prev_hash=GENESIS_HASH, **values)
    return AuditEntry(seq=previous.seq + 1, prev_hash=previous.leaf_hash().hex(), **values)


def key_fingerprint(public_raw: bytes) -> str:
    """SHA-256 hex of the raw Ed25519 public key: what an auditor compares out of band."""
    return hashlib.sha256(public_raw).hexdigest()


@dataclass(frozen=True)
class TreeHead:
    """A signed checkpoint: the Merkle root over the first ``size`` entries of one vault's log."""

    vault_id: str
    size: int  # number of entries covered
    root: str  # hex Merkle root over entries 1..size
    time: str  # UTC, see utc_timestamp()
    signature: bytes  # Ed25519 over signing_bytes()

    def __post_init__(self) -> None:
        _check_text(self.vault_id, "vault_id", optional=False)
        if type(self.size) is not int or self.size < 0:
            raise ValueError("tree head size must be an integer >= 0")
        if not isinstance(self.root, str) or not _HEX64_RE.fullmatch(self.root):
            raise ValueError("tree head root must be 64 lower-case hex characters")
        _check_time(self.time, "tree head time")
        if not isinstance(self.signature, bytes):
            raise TypeError("tree head signature must be bytes")

    def signing_bytes(self) -> bytes:
        """Domain prefix + canonical JSON of vault_id, size, root and time."""
        body = {"root": self.root, "size": self.size, "time": self.time, "vault_id": self.vault_id}
        return TREE_HEAD_DOMAIN + _canonical_json(body)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (signature in base64)."""
        return {
            "root": self.root,
            "signature": base64.b64encode(self.signature).decode("ascii"),
            "size": self.size,
            "time": self.time,
            "vault_id": self.vault_id,
        }

    @classmethod
    def from_dict(cls, data: object) -> TreeHead:
        """Inverse of ``to_dict``; raise AuditVerificationError naming the problem."""
        try:
            if not isinstance(data, dict) or set(data) != {"root", "signature", "size", "time", "vault_id"}:
                raise ValueError("needs exactly root, signature, size, time and vault_id")
            signature = b64decode_strict(data["signature"])
            return cls(data["vault_id"], data["size"], data["root"], data["time"], signature)
        except (ValueError, TypeError, binascii.Error) as exc:
            raise AuditVerificationError(f"tree head is malformed: {exc}") from None


def sign_tree_head(private_raw: bytes, vault_id: str, size: int, root: bytes | str, time: str) -> TreeHead:
    """Sign a checkpoint; ``root`` as 32 raw bytes (``MerkleFrontier.root()``) or its hex."""
    root_hex = root.hex() if isinstance(root, bytes) else root
    unsigned = TreeHead(vault_id, size, root_hex, time, b"")
    return TreeHead(vault_id, size, root_hex, time, envelope.sign(private_raw, unsigned.signing_bytes()))


def verify_tree_head(public_raw: bytes, head: TreeHead) -> bool:
    """True when ``head.signature`` is a valid Ed25519 signature by ``public_raw``; never raises."""
    return envelope.verify_signature(public_raw, head.signature, head.signing_bytes())


def thin_tree_heads(heads: Iterable[TreeHead], every: int = 1000) -> list[TreeHead]:
    """The heads worth exporting: the first at or past each multiple of ``every`` entries, and the newest.

    Each head costs its verifier one Ed25519 verification (docs/history/defaults.md), so a log with
    a head per command would make ``verify_bundle`` slow; fewer heads only coarsen how precisely a
    rewrite of the whole chain tail is located (edits that break the chain are located exactly).
    """
    if every < 1:
        raise ValueError("every must be >= 1")
    ordered = sorted(heads, key=lambda head: head.size)
    kept: list[TreeHead] = []
    mark = every
    for head in ordered:
        if head.size >= mark:
            kept.append(head)
            mark = (head.size // every + 1) * every
    if ordered and (not kept or kept[-1] is not ordered[-1]):
        kept.append(ordered[-1])
    return kept


@dataclass(frozen=True)
class InclusionProof:
    """What `audit prove SEQ` hands out: entry ``seq``'s bytes, a signed head and the audit path."""

    seq: int
    entry: bytes  # canonical bytes of the entry
    head: TreeHead
    path: tuple[bytes, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "entry": self.entry.decode("utf-8"),
            "tree_head": self.head.to_dict(),
            "path": [h.hex() for h in self.path],
        }

    @classmethod
    def from_dict(cls, data: object) -> InclusionProof:
        """Inverse of ``to_dict``; raise AuditVerificationError naming the problem."""
        try:
            if not isinstance(data, dict) or type(data.get("seq")) is not int:
                raise ValueError("needs seq, entry, tree_head and path")
            path = tuple(bytes.fromhex(h) for h in data["path"])
            return cls(
                data["seq"], str(data["entry"]).encode("utf-8"), TreeHead.from_dict(data["tree_head"]), path
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise AuditVerificationError(f"inclusion proof is malformed: {exc}") from None


def prove_inclusion(leaf_hashes: Sequence[bytes], entry: bytes, seq: int, head: TreeHead) -> InclusionProof:
    """Inclusion proof of entry ``seq`` (canonical bytes ``entry``) under ``head``; leaves in seq order."""
    if not 1 <= seq <= head.size <= len(leaf_hashes):
        raise ValueError(f"entry {seq} is not covered by a tree head of size {head.size}")
    path = merkle.inclusion_proof(leaf_hashes[: head.size], seq - 1)
    return InclusionProof(seq, entry, head, tuple(path))


def prove_consistency(leaf_hashes: Sequence[bytes], old_size: int, new_size: int) -> list[bytes]:
    """Consistency proof that the tree of ``old_size`` leaves is a prefix of the one of ``new_size``."""
    if new_size > len(leaf_hashes):
        raise ValueError(f"the log holds {len(leaf_hashes)} entries, fewer than {new_size}")
    return merkle.consistency_proof(leaf_hashes[:new_size], old_size)


def write_bundle(
    path: str | os.PathLike[str],
    vault_id: str,
    public_key_raw: bytes,
    entries: Iterable[AuditEntry | bytes],
    tree_heads: Iterable[TreeHead],
    *,
    excerpt_filter: dict[str, Any] | None = None,
) -> int:
    """Write a bundle atomically (temporary file in the target folder, fsync, rename); return the entry count.

    ``entries`` are AuditEntry objects or their stored canonical bytes, in seq order (streamed, not
    held in memory); tree heads are written smallest size first. With ``excerpt_filter`` (the
    ``AuditFilter.to_dict()`` that selected the shown entries) the file is an excerpt: some entry
    lines are then hidden-entry lines (``keyvault.excerpt``).
    """
    target = Path(path)
    header: dict[str, Any] = {
        "format": BUNDLE_FORMAT if excerpt_filter is None else EXCERPT_FORMAT,
        "public_key": base64.b64encode(public_key_raw).decode("ascii"),
        "vault_id": vault_id,
    }
    if excerpt_filter is not None:
        header["filter"] = excerpt_filter
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
    count = 0
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(_canonical_json(header) + b"\n")
            for entry in entries:
                line = entry.canonical_bytes() if isinstance(entry, AuditEntry) else bytes(entry)
                if b"\n" in line:
                    raise ValueError(f"entry {count + 1} contains a newline: not canonical bytes")
                out.write(line + b"\n")
                count += 1
            for head in sorted(tree_heads, key=lambda h: h.size):
                out.write(_canonical_json({"tree_head": head.to_dict()}) + b"\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return count
