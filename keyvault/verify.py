"""Offline verification of audit bundles, inclusion proofs and tree-head consistency; no database code.

``verify_bundle`` streams a bundle (format in ``keyvault.audit``) and either returns a
``VerifyReport`` or raises ``AuditVerificationError`` whose ``seq`` names the first bad entry:

- line structure: every line JSON and newline-terminated, header first, entries, then tree heads
  (a malformed line is named by its line number);
- order: entries numbered 1, 2, 3, … (a deleted, reordered or duplicated entry breaks this);
- time: an entry's time is never earlier than the one before it (the vault never writes one that
  is, see ``keyvault.ledger.append``), so a backwards time marks an entry moved or its time edited;
- hash chain: each entry's ``prev_hash`` is the previous entry's leaf hash. The first broken link
  is blamed on the entry that changed: the later one when its own next link is broken too (its
  bytes changed), the earlier one being inserted when the later one links to the entry before it,
  otherwise the earlier one (its hash no longer matches what its successor recorded);
- tree heads: valid Ed25519 signature by the bundle's key (which must equal a pinned key when one
  is given), the bundle's vault id, a size no larger than the entry count (else: truncation), and
  a root equal to the Merkle root of that many entries. When the chain is intact but a root does
  not match, the last entry under that head is certainly altered (an unaltered one would vouch for
  all before it), and the first entry after the largest matching head is named: from there on,
  nothing can be trusted.

An excerpt (``keyvault.excerpt``) is checked the same way: a hidden entry contributes the leaf
hash and ``prev_hash`` its line records, every shown entry is validated field by field and must match
the filter its header declares, and the report says how many entries were shown.

Speed: entries covered by a signed tree head are authenticated byte for byte by the signature, so
for them only ``seq`` and ``prev_hash`` are read (by position, from the canonical form) beside one
SHA-256; entries after the last signed head are protected only by the chain, so they are parsed
and validated field by field (``AuditEntry.from_canonical``), and the report says how many there
are. ``strict=True`` validates every entry that way.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from keyvault import envelope, merkle
from keyvault.audit import (
    BUNDLE_FORMAT,
    EXCERPT_FORMAT,
    GENESIS_HASH,
    AuditEntry,
    InclusionProof,
    TreeHead,
    b64decode_strict,
    entry_time,
    key_fingerprint,
    verify_tree_head,
)
from keyvault.errors import AuditVerificationError
from keyvault.excerpt import STUB_PREFIX, AuditFilter, parse_stub

if TYPE_CHECKING:
    from keyvault.anchor import SinceReport

_HEAD_PREFIX = b'{"tree_head":'


@dataclass(frozen=True)
class VerifyReport:
    """What an intact bundle holds."""

    vault_id: str
    entries: int  # number of entries (= last_seq)
    tree_heads: int  # number of signed tree heads checked
    last_seq: int
    root: str  # hex Merkle root over all entries
    key_fingerprint: str  # SHA-256 hex of the raw Ed25519 public key
    signed_size: int  # entries covered by the largest signed tree head
    since: SinceReport | None = None  # the kept checkpoints it extends (`audit verify --since`)
    where: AuditFilter | None = None  # an excerpt's filter (keyvault.excerpt); None for a whole bundle
    shown: int | None = None  # entries an excerpt shows in full (the others only as hashes)

    def summary(self) -> str:
        """One line for `ifadit audit verify`."""
        tail = self.entries - self.signed_size
        unsigned = f", {tail} newest entries covered by the hash chain only" if tail else ""
        since = f"; {self.since.summary()}" if self.since else ""
        what = f"audit log intact: {self.entries} entries"
        if self.where is not None:
            what = (
                f"audit excerpt intact: {self.shown} of {self.entries} entries shown ({self.where.describe()}), "
                "the others as hashes"
            )
        return (
            f"{what}, {self.tree_heads} signed tree heads{unsigned}; "
            f"root {self.root[:16]}…, key {self.key_fingerprint[:16]}…{since}"
        )


def load_public_key(path: str | os.PathLike[str]) -> bytes:
    """Read an auditor's pinned Ed25519 public key: 32 raw bytes, or one line of base64 or hex."""
    source = Path(path)
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise AuditVerificationError(f"{source}: cannot read the public key ({exc.strerror})") from None
    if len(data) == envelope.ED25519_KEY_BYTES:
        return data
    text = data.strip()
    for decode in (bytes.fromhex, lambda t: base64.b64decode(t, validate=True)):
        try:
            key = decode(text.decode("ascii"))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            continue
        if len(key) == envelope.ED25519_KEY_BYTES:
            return key
    raise AuditVerificationError(
        f"{source}: not an Ed25519 public key (expected 32 raw bytes, or base64 or hex of them)"
    )


def format_public_key(public_raw: bytes) -> str:
    """The public-key file's text: base64 of the raw key and a newline (what load_public_key reads)."""
    return base64.b64encode(public_raw).decode("ascii") + "\n"


def _fail(message: str, seq: int | None = None) -> AuditVerificationError:
    return AuditVerificationError(message, seq=seq, hint="the audit log was altered or the bundle is damaged")


def _parse_json(raw: bytes, lineno: int, what: str, seq: int | None = None) -> object:
    if not raw.endswith(b"\n"):
        raise _fail(f"line {lineno}: the file ends inside a line (truncated bundle)", seq)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise _fail(f"line {lineno}: not a valid JSON {what}", seq) from None


def _read_header(raw: bytes | None, public_key: bytes | None) -> tuple[str, bytes, AuditFilter | None]:
    if raw is None:
        raise _fail("the bundle is empty (no header line)")
    header = _parse_json(raw, 1, "bundle header")
    if not isinstance(header, dict) or not {"format", "public_key", "vault_id"} <= set(header):
        raise _fail("line 1: not an audit bundle header (needs format, public_key, vault_id)")
    where = _read_filter(header)
    try:
        embedded = b64decode_strict(header["public_key"])
    except ValueError:
        embedded = b""
    if len(embedded) != envelope.ED25519_KEY_BYTES:
        raise _fail("line 1: the embedded public key is not 32 bytes of base64")
    if not isinstance(header["vault_id"], str) or not header["vault_id"]:
        raise _fail("line 1: the vault id is missing")
    if public_key is not None and bytes(public_key) != embedded:
        raise AuditVerificationError(
            f"the bundle is signed by key {key_fingerprint(embedded)[:16]}…, "
            f"not by the pinned key {key_fingerprint(bytes(public_key))[:16]}…",
            hint="the bundle comes from another vault, or its key was replaced",
        )
    return header["vault_id"], embedded, where


def _read_filter(header: dict[str, object]) -> AuditFilter | None:
    """None for a whole bundle, the declared filter for an excerpt; a located failure for anything else."""
    kind = header["format"]
    if kind == BUNDLE_FORMAT and len(header) == 3:
        return None
    if kind != EXCERPT_FORMAT:
        raise _fail(
            f"line 1: unsupported bundle format {str(kind)[:40]!r} (this reads {BUNDLE_FORMAT}, {EXCERPT_FORMAT})"
        )
    if len(header) != 4 or "filter" not in header:
        raise _fail("line 1: an excerpt header needs exactly filter, format, public_key and vault_id")
    try:
        return AuditFilter.from_dict(header["filter"])
    except (ValueError, TypeError) as exc:
        raise _fail(f"line 1: the excerpt's filter is malformed: {exc}") from None


class _Chain:
    """Entry-section state: leaf hashes, per-entry link status, and the first broken link."""

    def __init__(self) -> None:
        self.hashes: list[bytes] = []
        self.offsets: list[int] = []  # offsets[i]: file offset of entry i+1's line; one more at the end
        self.link_ok = bytearray()  # link_ok[i] == 1 when entry i+1's prev_hash matches entry i
        self.first_break: int | None = None  # seq of the first entry whose prev_hash does not match
        self.backwards: tuple[int, str] | None = None  # (seq, message): first entry older than the one before
        self.break_to_grandparent = False  # that entry links to the entry two before it
        self.shown = 0  # entries present in full (an excerpt hides the others behind their hashes)

    def blame(self, covered: int = 0) -> tuple[int, str]:
        """(seq, message) for the first broken link; ``covered`` = entries vouched for by a signed head."""
        i = self.first_break
        assert i is not None
        if i == 1:
            return 1, "entry 1 does not start the hash chain (altered or inserted)"
        if self.break_to_grandparent:
            return i - 1, f"entry {i - 1} was inserted: entry {i} links to the entry before it"
        if i < len(self.link_ok) and not self.link_ok[i]:
            return (
                i,
                f"entry {i} was altered: it does not link to entry {i - 1} and entry {i + 1} does not link to it",
            )
        if i == len(self.link_ok) and covered >= i - 1:
            return (
                i,
                f"entry {i} was altered: it does not link to entry {i - 1}, which a signed tree head covers",
            )
        if i == len(
            self.link_ok
        ):  # the newest entry: nothing after it, and no head over entry i - 1, tells which
            return i - 1, f"entry {i - 1} or entry {i} was altered: entry {i} does not link to entry {i - 1}"
        return i - 1, f"entry {i - 1} was altered: its hash does not match the link recorded in entry {i}"


def verify_bundle(
    path: str | os.PathLike[str], public_key: bytes | None = None, *, strict: bool = False
) -> VerifyReport:
    """Verify an audit bundle offline; raise AuditVerificationError naming the first bad entry or line."""
    source = Path(path)
    try:
        handle = source.open("rb")
    except OSError as exc:
        raise AuditVerificationError(f"{source}: cannot read the audit bundle ({exc.strerror})") from None
    with handle:
        lines = enumerate(handle, start=1)
        header = next(lines, (1, None))[1]
        vault_id, embedded, where = _read_header(header, public_key)
        chain = _Chain()
        chain.offsets.append(len(header or b""))
        head_lines = _read_entries(lines, chain, strict, where)
        heads = [_read_head(raw, lineno, vault_id, embedded) for lineno, raw in head_lines]
        report = _check_heads(chain, heads, vault_id, embedded)
        if where is not None:
            return dataclasses.replace(report, where=where, shown=chain.shown)
        if not strict:
            _check_unsigned_tail(handle, chain, report.signed_size)
    return report


def _fast_fields(data: bytes) -> tuple[int, bytes] | None:
    """(seq, prev_hash as ASCII bytes) read by position from canonical bytes; None when not found.

    In canonical form the top-level ``prev_hash`` and ``seq`` keys are the last occurrences of those
    byte patterns: only reason, role (strings, where every quote is escaped), seq and time follow
    them, while nested occurrences can sit only in details and digests, which sort earlier.
    """
    i = data.rfind(b',"prev_hash":"')
    j = data.rfind(b',"seq":')
    if i < 0 or j < i or not data.startswith(b'{"action":') or not data.endswith(b'"}'):
        return None
    k = data.find(b",", j + 7)
    digits = data[j + 7 : k]
    if not digits.isdigit() or data[i + 78 : i + 79] != b'"':
        return None
    return int(digits), data[i + 14 : i + 78]


def _read_stub(data: bytes, lineno: int, expected: int) -> tuple[tuple[int, bytes], bytes]:
    """((seq, prev_hash hex), leaf hash) of an excerpt's hidden-entry line."""
    try:
        seq, prev, leaf = parse_stub(data)
    except ValueError as exc:
        raise _fail(f"line {lineno}: {exc}", expected) from None
    return (seq, prev), leaf


def _read_shown(data: bytes, lineno: int, expected: int, where: AuditFilter) -> None:
    """Validate an excerpt's full entry field by field and check that the filter selects it."""
    entry = _parse_entry(data, lineno, expected)
    if not where.matches(entry):
        raise _fail(
            f"entry {entry.seq} is shown but does not match the excerpt's filter ({where.describe()})",
            entry.seq,
        )


def _read_entries(
    lines: enumerate[bytes], chain: _Chain, strict: bool, where: AuditFilter | None = None
) -> list[tuple[int, bytes]]:
    """Consume entry lines into ``chain``; return the tree-head lines that follow.

    In an excerpt (``where`` set) a hidden entry contributes its recorded leaf hash and prev_hash
    and no time; every shown entry is validated in full and must match ``where``.
    """
    hashes, link_ok, offsets, sha256 = chain.hashes, chain.link_ok, chain.offsets, hashlib.sha256
    prev_hex = GENESIS_HASH.encode()
    prev_time = ""
    offset = offsets[0]
    for lineno, raw in lines:
        if raw.startswith(_HEAD_PREFIX):
            return [(lineno, raw), *lines]
        expected = len(hashes) + 1
        if not raw.endswith(b"\n"):
            raise _fail(f"line {lineno}: the file ends inside a line (truncated bundle)", expected)
        data = raw[:-1]
        found: tuple[int, bytes] | None
        moment: str | None
        if where is not None and data.startswith(STUB_PREFIX):
            found, leaf = _read_stub(data, lineno, expected)
            moment = prev_time  # a hidden entry shows no time
        else:
            if where is not None:
                _read_shown(data, lineno, expected, where)
                chain.shown += 1
            elif strict:
                _parse_entry(data, lineno, expected)
            found, moment, leaf = _fast_fields(data), entry_time(data), sha256(b"\x00" + data).digest()
        if found is None or moment is None:
            raise _fail(f"line {lineno}: not an audit entry in canonical form", expected)
        if moment < prev_time and chain.backwards is None:
            chain.backwards = (
                expected,
                f"entry {expected}: its time {moment} is earlier than entry {expected - 1}'s {prev_time} "
                "(times never go backwards: an entry was moved or its time edited)",
            )
        prev_time = moment
        seq, prev = found
        if seq != expected:
            if chain.first_break is not None:
                blamed, message = chain.blame()
                raise _fail(message, blamed)
            if seq > expected:
                raise _fail(
                    f"entry {expected} is missing or out of order (line {lineno} holds entry {seq})", expected
                )
            raise _fail(
                f"entry {seq} appears again or out of order at line {lineno} (expected entry {expected})", seq
            )
        if prev == prev_hex:
            link_ok.append(1)
        else:
            link_ok.append(0)
            if chain.first_break is None:
                chain.first_break = seq
                grandparent = hashes[-2].hex().encode() if seq >= 3 else GENESIS_HASH.encode()
                chain.break_to_grandparent = seq >= 2 and prev == grandparent
        hashes.append(leaf)
        prev_hex = leaf.hex().encode()
        offset += len(raw)
        offsets.append(offset)
    return []


def _parse_entry(data: bytes, lineno: int, seq: int) -> AuditEntry:
    try:
        return AuditEntry.from_canonical(data)
    except AuditVerificationError as exc:
        raise _fail(f"line {lineno}: {exc.args[0]}", seq) from None


def _check_unsigned_tail(handle: BinaryIO, chain: _Chain, covered: int) -> None:
    """Validate every field of the entries no signed tree head vouches for (entry seq sits on line seq+1)."""
    handle.seek(chain.offsets[covered])
    for seq in range(covered + 1, len(chain.hashes) + 1):
        _parse_entry(handle.readline()[:-1], seq + 1, seq)


def _read_head(raw: bytes, lineno: int, vault_id: str, public_raw: bytes) -> tuple[int, TreeHead]:
    obj = _parse_json(raw, lineno, "tree head line")
    if not isinstance(obj, dict) or set(obj) != {"tree_head"}:
        raise _fail(f"line {lineno}: expected a tree head line (entries must all come before the tree heads)")
    try:
        head = TreeHead.from_dict(obj["tree_head"])
    except AuditVerificationError as exc:
        raise _fail(f"line {lineno}: {exc.args[0]}") from None
    if head.vault_id != vault_id:
        raise _fail(
            f"line {lineno}: the tree head belongs to vault {head.vault_id[:64]!r}, not {vault_id[:64]!r}"
        )
    if not verify_tree_head(public_raw, head):
        raise _fail(
            f"line {lineno}: the tree head of size {head.size} has an invalid signature (forged or edited)"
        )
    return lineno, head


def _check_heads(
    chain: _Chain, heads: list[tuple[int, TreeHead]], vault_id: str, public_raw: bytes
) -> VerifyReport:
    count = len(chain.hashes)
    if not heads:
        raise _fail("the bundle holds no signed tree head: nothing vouches for its entries")
    sizes = {head.size for _, head in heads if head.size <= count} | {count}
    roots = merkle.prefix_roots(chain.hashes, sizes)
    faults: list[tuple[int, str]] = []
    covered = 0
    for lineno, head in sorted(heads, key=lambda item: item[1].size):
        if head.size > count:
            faults.append(
                (
                    count + 1,
                    f"the bundle ends at entry {count} but the signed tree head at line {lineno} "
                    f"covers {head.size} entries: entries {count + 1}..{head.size} are missing",
                )
            )
            break
        if roots[head.size].hex() == head.root:
            covered = head.size
            continue
        if chain.first_break is None:  # a broken link locates the change better than a root can
            faults.append(_root_mismatch(covered, head.size, lineno))
        break
    if chain.first_break is not None:
        faults.append(chain.blame(covered))
    if chain.backwards is not None:
        faults.append(chain.backwards)
    if faults:
        seq, message = min(faults)
        raise _fail(message, seq)
    return VerifyReport(
        vault_id=vault_id,
        entries=count,
        tree_heads=len(heads),
        last_seq=count,
        root=roots[count].hex(),
        key_fingerprint=key_fingerprint(public_raw),
        signed_size=covered,
    )


def _root_mismatch(covered: int, size: int, lineno: int) -> tuple[int, str]:
    if size == covered + 1:
        return size, f"entry {size} does not match the signed tree head at line {lineno} (altered)"
    return covered + 1, (
        f"entries {covered + 1}..{size} cannot be trusted: entry {size} does not match the signed tree head at "
        f"line {lineno}, and the ones after the last matching head (size {covered}) may have been rewritten with it"
    )


def verify_inclusion_proof(proof: InclusionProof, public_key: bytes) -> AuditEntry:
    """Check a proof from `audit prove SEQ` against a public key; return the proven entry."""
    if not verify_tree_head(public_key, proof.head):
        raise _fail(f"the tree head of size {proof.head.size} has an invalid signature (forged or edited)")
    entry = AuditEntry.from_canonical(proof.entry)
    if entry.seq != proof.seq:
        raise _fail(f"the proof names entry {proof.seq} but carries entry {entry.seq}", proof.seq)
    index = proof.seq - 1
    if not merkle.verify_inclusion(
        merkle.leaf_hash(proof.entry), index, proof.head.size, proof.path, bytes.fromhex(proof.head.root)
    ):
        raise _fail(
            f"entry {proof.seq} is not included in the signed tree head of size {proof.head.size}", proof.seq
        )
    return entry


def verify_consistency_between(
    head_old: TreeHead, head_new: TreeHead, proof: Sequence[bytes], public_key: bytes
) -> None:
    """Raise unless both heads are signed by ``public_key`` for one vault and ``proof`` shows old ⊑ new."""
    for head in (head_old, head_new):
        if not verify_tree_head(public_key, head):
            raise _fail(f"the tree head of size {head.size} has an invalid signature (forged or edited)")
    if head_old.vault_id != head_new.vault_id:
        raise _fail(
            f"the tree heads belong to different vaults ({head_old.vault_id!r}, {head_new.vault_id!r})"
        )
    if not merkle.verify_consistency(
        head_old.size, head_new.size, bytes.fromhex(head_old.root), bytes.fromhex(head_new.root), proof
    ):
        raise _fail(
            f"the tree head of size {head_new.size} does not extend the one of size {head_old.size}: "
            "history was rewritten",
            head_old.size + 1 if head_old.size < head_new.size else None,
        )
