"""Audit excerpts: the entries a filter selects shown in full, every other entry only as its hashes.

Why: the auditor of one case (or a court) should read that case's history and nothing of the lab's
other cases, yet check it offline against the vault's signatures and the checkpoints they kept, as
they check a whole-log bundle. An excerpt is therefore the whole log with the unselected entries
redacted to two hashes each; their content (actors, cases, reasons, times) stays in the vault.

Format ``ifadit-audit-excerpt/1`` (JSON Lines, UTF-8, every line ends with ``\\n``)::

    line 1   {"filter":{…},"format":"ifadit-audit-excerpt/1","public_key":"<base64>","vault_id":"…"}
    then     one line per log entry, seq 1, 2, 3, … in order: a selected entry's canonical bytes, or
             for any other entry {"leaf":"<hex leaf hash>","prev":"<hex prev_hash>","seq":N}
    then     signed tree heads, smallest size first: for each shown entry the largest head below it
             and the smallest head covering it, and the newest head

Because every leaf hash is present, ``keyvault.verify.verify_bundle`` checks an excerpt as it checks
a whole bundle: each shown entry's bytes hash into the Merkle roots the vault signed (so none was
altered, and each sits at its place in the log), the hash chain is checked across hidden entries
through their recorded ``prev`` (which locates an altered shown entry exactly), every shown entry
must match the filter, and ``audit verify --since`` and witnesses work on the full leaf list. A
hidden entry reveals its position and hashes only: a leaf hash covers the entry's microsecond time
and its predecessor's hash, so it cannot be guessed back to content.

What an excerpt cannot prove: that no entry matching the filter hides behind a hash. Completeness
rests on the exporting vault; an auditor who doubts it exports the whole log (`audit export`) and
checks that both verify to the same root at the same size.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from keyvault.audit import AuditEntry, TreeHead, utc_timestamp
from keyvault.errors import AuditVerificationError

STUB_PREFIX = b'{"leaf":'  # how a hidden entry's line starts (a shown entry's starts with '{"action":')
_STUB_RE = re.compile(rb'\{"leaf":"([0-9a-f]{64})","prev":"([0-9a-f]{64})","seq":([1-9][0-9]{0,18})\}')


@dataclass(frozen=True)
class AuditFilter:
    """Which entries an excerpt or `audit show` selects; every set criterion must hold (empty: all)."""

    case: str | None = None  # the entry's case id, exactly
    actors: tuple[str, ...] = ()  # any of these acting users
    actions: tuple[str, ...] = ()  # any of these actions; "key" also selects "key.issue", "key.revoke", …
    since: datetime | None = None  # entries at or after this time (timezone-aware)
    until: datetime | None = None  # entries before this time (exclusive)

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            moment = getattr(self, name)
            if moment is not None and moment.tzinfo is None:
                raise ValueError(f"filter time {name} must be timezone-aware")
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise ValueError("the filter's end time must come after its start time")

    def matches(self, entry: AuditEntry) -> bool:
        """Whether ``entry`` passes every criterion that is set."""
        return (
            (self.case is None or entry.case_id == self.case)
            and (not self.actors or entry.actor in self.actors)
            and (not self.actions or any(_action_matches(entry.action, a) for a in self.actions))
            and (self.since is None or entry.time >= utc_timestamp(self.since))
            and (self.until is None or entry.time < utc_timestamp(self.until))
        )

    def describe(self) -> str:
        """The criteria in words, for summaries and the report ("all entries" when none is set)."""
        parts = []
        if self.case is not None:
            parts.append(f"case {self.case}")
        if self.actors:
            parts.append(f"actor {' or '.join(self.actors)}")
        if self.actions:
            parts.append(f"action {' or '.join(self.actions)}")
        if self.since is not None:
            parts.append(f"from {utc_timestamp(self.since)[:19]}Z")
        if self.until is not None:
            parts.append(f"before {utc_timestamp(self.until)[:19]}Z")
        return ", ".join(parts) or "all entries"

    def to_dict(self) -> dict[str, Any]:
        """The excerpt header's ``filter`` object (every key present; times canonical UTC)."""
        return {
            "actions": list(self.actions),
            "actors": list(self.actors),
            "case": self.case,
            "since": utc_timestamp(self.since) if self.since else None,
            "until": utc_timestamp(self.until) if self.until else None,
        }

    @classmethod
    def from_dict(cls, data: object) -> AuditFilter:
        """Inverse of ``to_dict``; ValueError naming what is wrong."""
        if not isinstance(data, dict) or set(data) != {"actions", "actors", "case", "since", "until"}:
            raise ValueError("the filter needs exactly actions, actors, case, since and until")
        lists = [data["actions"], data["actors"]]
        if not all(isinstance(v, list) and all(isinstance(i, str) for i in v) for v in lists):
            raise ValueError("the filter's actions and actors must be lists of strings")
        if data["case"] is not None and not isinstance(data["case"], str):
            raise ValueError("the filter's case must be a string or null")
        times = [data["since"], data["until"]]
        if not all(t is None or isinstance(t, str) for t in times):
            raise ValueError("the filter's times must be UTC time strings or null")
        since, until = (datetime.fromisoformat(t) if t else None for t in times)
        return cls(data["case"], tuple(data["actors"]), tuple(data["actions"]), since, until)


def _action_matches(action: str, wanted: str) -> bool:
    return action == wanted or action.startswith(wanted + ".")


def stub_line(entry: AuditEntry) -> bytes:
    """The line that stands for a hidden entry: its leaf hash, its recorded prev_hash and its seq."""
    leaf = entry.leaf_hash().hex()
    return f'{{"leaf":"{leaf}","prev":"{entry.prev_hash}","seq":{entry.seq}}}'.encode()


def parse_stub(data: bytes) -> tuple[int, bytes, bytes]:
    """(seq, prev_hash as ASCII hex bytes, raw leaf hash) of a hidden entry's line; ValueError if malformed."""
    match = _STUB_RE.fullmatch(data)
    if match is None:
        raise ValueError("not a hidden entry line (leaf, prev and seq in canonical form)")
    return int(match[3]), match[2], bytes.fromhex(match[1].decode("ascii"))


def stub_leaf(data: bytes) -> bytes:
    """The raw leaf hash recorded on a hidden entry's line (the line without its newline)."""
    return parse_stub(data)[2]


def excerpt_lines(blobs: Iterable[bytes], where: AuditFilter, shown: list[int]) -> Iterator[bytes]:
    """Each stored entry's excerpt line in order; appends the seq of every entry shown in full to ``shown``.

    A stored entry that no longer parses is shown as stored, so that verification names it.
    """
    for seq, blob in enumerate(blobs, start=1):
        try:
            entry = AuditEntry.from_canonical(blob)
        except AuditVerificationError:
            shown.append(seq)
            yield blob
            continue
        if where.matches(entry):
            shown.append(entry.seq)
            yield blob
        else:
            yield stub_line(entry)


def bracketing_heads(heads: Sequence[TreeHead], shown: Sequence[int]) -> list[TreeHead]:
    """The heads an excerpt carries: around each shown entry the largest below and the smallest covering it.

    A shown entry altered after signing then fails against the smallest head that covers it while the
    one below still matches, so the fault is located to that entry; the newest head is always kept.
    """
    by_size = {head.size: head for head in heads}
    sizes = sorted(by_size)
    kept = set(sizes[-1:])
    for seq in shown:
        at = bisect.bisect_left(sizes, seq)  # sizes[at] is the smallest size >= seq
        kept.update(sizes[max(at - 1, 0) : at + 1])
    return [by_size[size] for size in sorted(kept)]
