"""The audit log's database side: gap-free appends under a lock, signed checkpoints, reads for export.

Entries, their canonical bytes, the hash chain and tree-head signatures are defined in
``keyvault.audit`` (pure); this module stores them. Appends are serialized so that concurrent
processes keep one chain: SQLite transactions start with ``BEGIN IMMEDIATE`` (see ``keyvault.db``),
PostgreSQL takes a transaction-scoped advisory lock before reading the chain's tail. The primary
key on ``seq`` turns any remaining race into a failed transaction rather than a fork.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from keyvault import merkle
from keyvault.audit import (
    GENESIS_HASH,
    AuditEntry,
    InclusionProof,
    TreeHead,
    entry_time,
    prove_consistency,
    prove_inclusion,
    sign_tree_head,
    utc_timestamp,
    verify_tree_head,
)
from keyvault.errors import AuditVerificationError, IntegrityError, NotFound
from keyvault.schema import AuditEntryRow, TreeHeadRow

AUDIT_LOCK_KEY = 0x1FAD17  # PostgreSQL advisory-lock key of the audit chain

SignedHead = TreeHead
_LAST = (
    select(AuditEntryRow.seq, AuditEntryRow.leaf_hash, AuditEntryRow.canonical)
    .order_by(AuditEntryRow.seq.desc())
    .limit(1)
)
_INSERT = insert(AuditEntryRow)
_NEWEST_HEAD = (
    select(TreeHeadRow.size, TreeHeadRow.root, TreeHeadRow.time, TreeHeadRow.signature)
    .order_by(TreeHeadRow.id.desc())
    .limit(1)
)


def lock(session: Session) -> None:
    """Take the append lock for the rest of the transaction (SQLite's BEGIN IMMEDIATE already holds it)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK_KEY})


_lock = lock


def next_seq(session: Session) -> int:
    """The sequence number the next entry appended in this transaction will get.

    Takes the append lock (SQLite: the transaction's ``BEGIN IMMEDIATE`` already holds it; PostgreSQL: the
    advisory lock, held to the end of the transaction), so no other writer can append before this one.
    """
    _lock(session)
    last = session.scalar(select(AuditEntryRow.seq).order_by(AuditEntryRow.seq.desc()).limit(1))
    return 1 if last is None else last + 1


def append(
    session: Session,
    *,
    now: datetime,
    actor: str | None,
    role: str | None,
    action: str,
    outcome: str,
    key_handle: str | None = None,
    key_version: int | None = None,
    case_id: str | None = None,
    reason: str | None = None,
    digests: dict[str, str] | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry inside the caller's transaction (it commits with the action it records).

    Runs on the session's connection with Core statements: the ORM's unit of work would cost more
    than the append itself. Entry times never go backwards: a clock stepped back (NTP) gets the
    previous entry's time, so `audit verify` can treat a backwards time as tampering.
    """
    _lock(session)
    connection = session.connection()
    last = connection.execute(_LAST).first()
    seq, prev_hash = (1, GENESIS_HASH) if last is None else (last.seq + 1, bytes(last.leaf_hash).hex())
    moment = utc_timestamp(now)
    if last is not None:
        moment = max(moment, entry_time(bytes(last.canonical)) or moment)
    entry = AuditEntry(
        seq=seq,
        time=moment,
        actor=actor,
        role=role,
        action=action,
        outcome=outcome,
        key_handle=key_handle,
        key_version=key_version,
        case_id=case_id,
        reason=reason,
        digests=dict(digests or {}),
        details=dict(details or {}),
        prev_hash=prev_hash,
    )
    canonical = entry.canonical_bytes()
    connection.execute(
        _INSERT,
        {"seq": seq, "canonical": canonical, "leaf_hash": merkle.leaf_hash(canonical), "case_id": case_id},
    )
    return entry


def leaf_hashes(session: Session, size: int | None = None) -> list[bytes]:
    """Leaf hashes of the first ``size`` entries (all when None), in sequence order."""
    query = select(AuditEntryRow.leaf_hash).order_by(AuditEntryRow.seq)
    if size is not None:
        query = query.where(AuditEntryRow.seq <= size)
    return [bytes(value) for value in session.scalars(query)]


def checkpoint(
    session: Session,
    *,
    signing_key: bytes,
    public_key: bytes,
    vault_id: str,
    now: datetime,
    published: tuple[int, bytes, str] | None = None,
) -> TreeHead:
    """Sign a tree head over the whole log and store it (under the append lock, so size and root agree).

    Refuses (``IntegrityError``) when the log no longer extends the newest stored head, or that head's
    signature fails: the vault never signs over history that was rewritten behind its back. The
    caller takes the lock first when it reads ``published`` (size, root, where) — the newest
    checkpoint published outside the database — which the log must extend too.
    """
    _lock(session)
    hashes = leaf_hashes(session)
    newest = session.scalars(select(TreeHeadRow).order_by(TreeHeadRow.id.desc()).limit(1)).first()
    previous = _head(newest, vault_id) if newest is not None else None
    sizes = {len(hashes)}
    if previous is not None:
        if previous.size > len(hashes) or not verify_tree_head(public_key, previous):
            raise _rewritten(previous.size)
        sizes.add(previous.size)
    if published is not None and published[0] <= len(hashes):
        sizes.add(published[0])
    roots = merkle.prefix_roots(hashes, sizes)
    if previous is not None and roots[previous.size].hex() != previous.root:
        raise _rewritten(previous.size)
    if published is not None:
        size, root, where = published
        if size > len(hashes):
            fault = (
                f"the audit log holds {len(hashes)} entries but the checkpoint published in {where} covers "
                f"{size}: entries were removed together with their tree heads"
            )
        elif roots[size] != root:
            fault = (
                f"the audit log's first {size} entries no longer match the checkpoint published in {where}: "
                "entries were rewritten together with their tree heads"
            )
        else:
            fault = ""
        if fault:
            raise IntegrityError(
                f"{fault}; refusing to sign a new tree head",
                hint="`ifadit audit export` and `ifadit audit verify --since` with a kept checkpoint locate it",
            )
    head = sign_tree_head(signing_key, vault_id, len(hashes), roots[len(hashes)], utc_timestamp(now))
    session.add(
        TreeHeadRow(size=head.size, root=bytes.fromhex(head.root), time=head.time, signature=head.signature)
    )
    session.flush()
    return head


def _rewritten(size: int) -> IntegrityError:
    return IntegrityError(
        f"the audit log no longer matches its signed tree head of size {size}: entries were altered, "
        "removed or reordered; refusing to sign a new tree head",
        hint="export it (`ifadit audit export`) and run `ifadit audit verify` on the bundle to locate the change",
    )


def check_index_columns(session: Session) -> None:
    """Raise ``AuditVerificationError`` at the first row whose indexed copies contradict its canonical bytes.

    ``audit show --case`` filters on the ``case_id`` column and appends chain on ``leaf_hash``; an edit
    of either column alone leaves the signed entries intact, so it is checked here against the entry.
    """
    query = select(
        AuditEntryRow.seq, AuditEntryRow.canonical, AuditEntryRow.leaf_hash, AuditEntryRow.case_id
    ).order_by(AuditEntryRow.seq)
    for row in session.execute(query):
        canonical = bytes(row.canonical)
        try:
            entry = json.loads(canonical)
            stored_seq, case_id = entry["seq"], entry["case_id"]
        except (ValueError, KeyError, TypeError):
            raise _column_fault(row.seq, "its canonical bytes are not an audit entry") from None
        if stored_seq != row.seq:
            raise _column_fault(row.seq, f"the seq column does not match the entry's seq {stored_seq}")
        if row.case_id != case_id:
            raise _column_fault(
                row.seq, f"case_id column {_short(row.case_id)} does not match the entry ({_short(case_id)})"
            )
        if bytes(row.leaf_hash) != merkle.leaf_hash(canonical):
            raise _column_fault(row.seq, "the leaf_hash column does not match the entry's bytes")


def _short(value: object) -> str:
    return "NULL" if value is None else repr(str(value)[:64])


def _column_fault(seq: int, message: str) -> AuditVerificationError:
    return AuditVerificationError(
        f"entry {seq}: {message}", seq=seq, hint="an index column was edited in the database"
    )


def entries(session: Session, *, case_id: str | None = None, size: int | None = None) -> list[AuditEntry]:
    """Stored entries in sequence order, optionally only one case's or only the first ``size``."""
    query = select(AuditEntryRow.canonical).order_by(AuditEntryRow.seq)
    if case_id is not None:
        query = query.where(AuditEntryRow.case_id == case_id)
    if size is not None:
        query = query.where(AuditEntryRow.seq <= size)
    return [AuditEntry.from_canonical(bytes(blob)) for blob in session.scalars(query)]


def entry_at(session: Session, seq: int) -> AuditEntry | None:
    """The stored entry with sequence number ``seq``, or None when there is none (yet)."""
    blob = session.scalar(select(AuditEntryRow.canonical).where(AuditEntryRow.seq == seq))
    return None if blob is None else AuditEntry.from_canonical(bytes(blob))


def entries_bytes(session: Session) -> list[bytes]:
    """Every entry's canonical bytes in sequence order (what a bundle holds)."""
    return [
        bytes(blob) for blob in session.scalars(select(AuditEntryRow.canonical).order_by(AuditEntryRow.seq))
    ]


def _head(row: TreeHeadRow, vault_id: str) -> TreeHead:
    return TreeHead(vault_id, row.size, bytes(row.root).hex(), row.time, bytes(row.signature))


def tree_heads(session: Session, vault_id: str) -> list[TreeHead]:
    """Every stored signed tree head, oldest first."""
    return [_head(row, vault_id) for row in session.scalars(select(TreeHeadRow).order_by(TreeHeadRow.id))]


def signed_size(session: Session) -> int:
    """How many entries the newest signed tree head covers (0 before the first checkpoint)."""
    size = session.scalar(select(TreeHeadRow.size).order_by(TreeHeadRow.id.desc()).limit(1))
    return size or 0


def latest_head(session: Session, vault_id: str) -> TreeHead:
    """The newest signed tree head; ``NotFound`` before the first checkpoint."""
    row = session.scalars(select(TreeHeadRow).order_by(TreeHeadRow.id.desc()).limit(1)).first()
    if row is None:
        raise NotFound("the audit log has no signed tree head yet")
    return _head(row, vault_id)


def head_of_size(session: Session, vault_id: str, size: int) -> TreeHead:
    """A stored signed tree head covering exactly ``size`` entries; ``NotFound`` when none was signed."""
    row = session.scalars(select(TreeHeadRow).where(TreeHeadRow.size == size).limit(1)).first()
    if row is None:
        raise NotFound(f"no signed tree head of size {size}", hint="`ifadit audit show --heads` lists them")
    return _head(row, vault_id)


def inclusion(session: Session, vault_id: str, seq: int) -> InclusionProof:
    """Inclusion proof of entry ``seq`` under the newest signed tree head."""
    head = latest_head(session, vault_id)
    row = session.get(AuditEntryRow, seq)
    if row is None or not 1 <= seq <= head.size:
        raise NotFound(f"audit entry {seq} is not covered by the newest tree head (size {head.size})")
    return prove_inclusion(leaf_hashes(session, head.size), bytes(row.canonical), seq, head)


def consistency(session: Session, old_size: int, new_size: int) -> list[bytes]:
    """RFC 6962 consistency proof between the trees of the first ``old_size`` and ``new_size`` entries."""
    hashes = leaf_hashes(session, new_size)
    if not 0 < old_size <= new_size <= len(hashes):
        raise NotFound(
            f"no consistency proof from size {old_size} to {new_size} (log has {len(hashes)} entries)"
        )
    return prove_consistency(hashes, old_size, new_size)


def _tail_fault(seq: int, what: str) -> IntegrityError:
    return IntegrityError(
        f"audit log entry {seq}: {what}: every action is refused until an admin runs `ifadit audit verify`",
        hint="export the log (`ifadit audit export`) and verify the bundle to locate the change",
    )


def _first_broken_link(session: Session, upto: int) -> int:
    """The first entry (1..upto) whose stored bytes no longer match what the next entry links to."""
    previous: tuple[int, bytes] | None = None
    query = select(AuditEntryRow.seq, AuditEntryRow.canonical).where(AuditEntryRow.seq <= upto + 1)
    for seq, blob in session.execute(query.order_by(AuditEntryRow.seq)):
        canonical = bytes(blob)
        if previous is not None and json.loads(canonical).get("prev_hash") != previous[1].hex():
            return previous[0]
        previous = (seq, merkle.leaf_hash(canonical))
    return upto


def _check_head(session: Session, head: TreeHead, public_key: bytes) -> None:
    """The newest signed head: its signature holds and the stored leaves still give its root."""
    if not verify_tree_head(public_key, head):
        raise _tail_fault(head.size, "the newest signed tree head's signature fails")
    hashes = leaf_hashes(session, head.size)
    if len(hashes) < head.size:
        raise _tail_fault(len(hashes) + 1, f"removed (the newest signed tree head covers {head.size})")
    if merkle.root(hashes).hex() != head.root:
        seq = _first_broken_link(session, head.size)
        raise _tail_fault(seq, "rewritten under the newest signed tree head")


Frontier = tuple[int, bytes]  # (seq, leaf hash) of the newest entry a tail check found sound


def check_tail(
    session: Session,
    vault_id: str,
    public_key: bytes,
    verified: set[TreeHead],
    since: Frontier | None = None,
) -> Frontier | None:
    """Fail closed: raise ``IntegrityError`` locating the first fault in the log's tail; return the new frontier.

    The newest head is checked (signature, root over the stored leaves) once per ``verified`` set. Then
    each entry from the head's last one (or from ``since``, an earlier check's frontier past the head,
    whose stored leaf must not have changed) onward must re-hash to its stored leaf hash, carry its
    row's seq, and link by ``prev_hash`` to the entry before it. Cost: one head lookup plus the rows
    appended since the last check; a checkpoint passes no ``since`` and re-checks the whole tail.
    """
    newest = session.execute(_NEWEST_HEAD).first()  # Core: an ORM load costs more than the check
    start = 1
    if newest is not None:
        head = TreeHead(vault_id, newest.size, bytes(newest.root).hex(), newest.time, bytes(newest.signature))
        if head not in verified:
            _check_head(session, head, public_key)
            verified.add(head)
        start = max(head.size, 1)
    previous = since[1] if since is not None and since[0] >= start else None
    start = since[0] if previous is not None and since is not None else start
    frontier: Frontier | None = None
    query = select(AuditEntryRow.seq, AuditEntryRow.canonical, AuditEntryRow.leaf_hash)
    for seq, blob, stored in session.execute(
        query.where(AuditEntryRow.seq >= start).order_by(AuditEntryRow.seq)
    ):
        canonical, stored = bytes(blob), bytes(stored)
        expected = frontier[0] + 1 if frontier is not None else start
        if seq != expected:
            raise _tail_fault(expected, "missing")
        if merkle.leaf_hash(canonical) != stored:
            raise _tail_fault(seq, "its stored leaf hash does not match its bytes")
        if frontier is None and previous is not None:
            if stored != previous:
                raise _tail_fault(seq, "changed since the last check")
        else:
            entry = json.loads(canonical)
            link = frontier[1] if frontier is not None else None
            if entry.get("seq") != seq or (link is not None and entry.get("prev_hash") != link.hex()):
                raise _tail_fault(seq, "hash chain broken")
        frontier = (seq, stored)
    if frontier is None and start > 1:
        raise _tail_fault(start, "missing")
    return frontier


def mentions(session: Session, needle: bytes) -> bool:
    """True when some entry's canonical bytes contain ``needle`` (a full scan: for rare checks only)."""
    return any(needle in bytes(blob) for blob in session.scalars(select(AuditEntryRow.canonical)))


def retirement(session: Session, case_id: str, handle: str) -> tuple[int, str] | None:
    """(seq, action) of the first "ok" ``key.revoke`` or ``key.destroy`` entry of key ``handle``, else None.

    Reads only the key's case's entries (indexed) and parses only those naming the handle, so rows of
    a revoked key rolled back from a backup, tags included, still meet the log's record of the revocation.
    """
    needle = f'"key_handle":"{handle}"'.encode()
    query = select(AuditEntryRow.seq, AuditEntryRow.canonical).where(AuditEntryRow.case_id == case_id)
    for seq, blob in session.execute(query.order_by(AuditEntryRow.seq)):
        canonical = bytes(blob)
        if needle not in canonical or b'"action":"key.' not in canonical:
            continue
        entry = json.loads(canonical)
        if entry.get("action") in ("key.revoke", "key.destroy") and entry.get("outcome") == "ok":
            return seq, str(entry["action"])
    return None


CONSUMING_ACTIONS = ("restore", "key.use")  # the actions that use up a restore request (details.request)


def consumption(session: Session, case_id: str, request: str) -> tuple[int, str] | None:
    """(seq, action) of the first "ok" entry that used restore request ``request``, else None.

    Reads only the request's case's entries (indexed), as ``retirement`` does, so request and approval
    rows rolled back from a backup to before their use, tags included, still meet the log's record of it.
    """
    needle = f'"request":"{request}"'.encode()
    query = select(AuditEntryRow.seq, AuditEntryRow.canonical).where(AuditEntryRow.case_id == case_id)
    for seq, blob in session.execute(query.order_by(AuditEntryRow.seq)):
        canonical = bytes(blob)
        if needle not in canonical:
            continue
        entry = json.loads(canonical)
        details = entry.get("details") or {}
        if (
            entry.get("action") in CONSUMING_ACTIONS
            and entry.get("outcome") == "ok"
            and details.get("request") == request
        ):
            return seq, str(entry["action"])
    return None
