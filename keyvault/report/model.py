"""What an audit report of one case holds, built from a bundle or excerpt (offline) or from the live vault.

Steps (``build_from_bundle``):
1. verify the file as `ifadit audit verify` does (with the kept checkpoints when given); a failure is
   kept as the located fault instead of raised, because a report of a tampered log is what an
   auditor needs most;
2. read the case's entries leniently (a line that does not parse is counted, never fatal);
3. tell each entry as an event, marking the faulty entry and everything after it as not verified;
4. sum up who did what under which role, and the case's counts.

``build_from_vault`` exports the case's excerpt to a temporary file (an audited `audit.export` that
names the case) and builds from it, so the live report and the offline one read the same bytes.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from keyvault import note
from keyvault.anchor import check_bundle_since
from keyvault.audit import AuditEntry
from keyvault.errors import AuditVerificationError
from keyvault.excerpt import STUB_PREFIX, AuditFilter
from keyvault.report.events import Event, event
from keyvault.verify import VerifyReport, verify_bundle

if TYPE_CHECKING:
    pass

_HEAD_PREFIX = b'{"tree_head":'


@dataclass(frozen=True)
class Anchors:
    """Checkpoints the auditor kept (`--since`): the log must extend each; the witnesses must have cosigned."""

    notes: Sequence[str] = ()  # checkpoint notes, oldest first
    file_name: str | None = None  # where they came from, named on the page
    witnesses: Sequence[note.Verifier] = ()


@dataclass(frozen=True)
class Source:
    """Where the report's entries came from, for its header."""

    kind: str  # "bundle" (an exported file, read offline) or "vault" (the live vault)
    name: str  # the file name, or the vault URL with any password masked
    vault_id: str
    generated: str  # "2026-12-07 13:40:02 UTC"


@dataclass(frozen=True)
class Verification:
    """The verification result shown at the top: intact, or the located fault."""

    intact: bool
    headline: str  # one sentence
    fault: str | None  # the located fault, as `audit verify` prints it
    fault_seq: int | None  # the first entry that cannot be trusted
    report: VerifyReport | None  # what an intact file holds
    checkpoint: str | None  # what the log was proven against (`--since`), None when nothing was kept
    checkpoint_file: str | None
    key_source: (
        str  # "pinned" (the auditor's --public-key), "vault" (the live vault's) or "file" (the bundle's own)
    )


@dataclass(frozen=True)
class ActorSummary:
    """One row of "who did what": an actor, the roles they acted in and what they did."""

    actor: str
    roles: tuple[str, ...]  # roles of the actions that succeeded (a refused entry records the role it needed)
    actions: tuple[tuple[str, int], ...]  # (action, count), most frequent first
    refused: int
    failed: int
    first: str
    last: str


@dataclass(frozen=True)
class CaseReport:
    """Everything the HTML page shows."""

    case: str
    source: Source
    verification: Verification
    events: tuple[Event, ...]
    actors: tuple[ActorSummary, ...]
    counts: dict[str, int]
    unreadable: int  # entry lines that could not be read (tampered beyond parsing)
    untrusted: frozenset[int] = field(default_factory=frozenset)  # seqs at or after the fault


def _when(canonical: str) -> str:
    return canonical[:19].replace("T", " ")  # the page's columns say UTC


def _verify(
    path: Path, public_key: bytes | None, anchors: Anchors
) -> tuple[VerifyReport | None, AuditVerificationError | None]:
    try:
        report = verify_bundle(path, public_key, strict=True)
        if anchors.notes:
            report = check_bundle_since(
                path, report, anchors.notes, log_key=public_key, witnesses=anchors.witnesses
            )
    except AuditVerificationError as exc:
        return None, exc
    return report, None


def _read_case(path: Path, case: str) -> tuple[str, list[AuditEntry], int]:
    """(vault id, the case's entries that parse, how many entry lines did not parse)."""
    entries: list[AuditEntry] = []
    unreadable = 0
    vault_id = "unknown (the header does not parse)"
    with path.open("rb") as handle:
        try:
            header = json.loads(handle.readline())
            vault_id = str(header["vault_id"])
        except (ValueError, KeyError, TypeError):
            pass
        for line in handle:
            if line.startswith(_HEAD_PREFIX):
                break
            if line.startswith(STUB_PREFIX):
                continue
            try:
                entry = AuditEntry.from_canonical(line.rstrip(b"\n"))
            except AuditVerificationError:
                unreadable += 1
                continue
            if entry.case_id == case:
                entries.append(entry)
    return vault_id, entries, unreadable


def _verification(
    report: VerifyReport | None,
    fault: AuditVerificationError | None,
    *,
    key_source: str,
    checkpoint_file: str | None,
) -> Verification:
    if report is None:
        assert fault is not None
        return Verification(
            intact=False,
            headline="Verification failed: the audit log was altered or the file is damaged.",
            fault=str(fault),
            fault_seq=fault.seq,
            report=None,
            checkpoint=None,
            checkpoint_file=checkpoint_file,
            key_source=key_source,
        )
    what = "excerpt" if report.where is not None else "audit log"
    return Verification(
        intact=True,
        headline=f"Verified: the {what} is intact.",
        fault=None,
        fault_seq=None,
        report=report,
        checkpoint=report.since.summary() if report.since else None,
        checkpoint_file=checkpoint_file,
        key_source=key_source,
    )


def _actors(events: Sequence[Event]) -> tuple[ActorSummary, ...]:
    rows = []
    for actor in sorted({e.actor for e in events}):
        mine = [e for e in events if e.actor == actor]
        counted = Counter(e.action for e in mine).most_common()
        rows.append(
            ActorSummary(
                actor=actor,
                roles=tuple(
                    sorted({e.role for e in mine if e.outcome == "ok"})
                ),  # a refusal names the role needed
                actions=tuple(counted),
                refused=sum(e.outcome == "refused" for e in mine),
                failed=sum(e.outcome == "failed" for e in mine),
                first=mine[0].time,
                last=mine[-1].time,
            )
        )
    return tuple(rows)


def _counts(events: Sequence[Event]) -> dict[str, int]:
    ok = [e for e in events if e.outcome == "ok"]
    return {
        "keys issued": sum(e.action == "key.issue" for e in ok),
        "anonymize runs": sum(e.action == "anonymize" for e in ok),
        "restore requests": sum(e.action == "restore.request" for e in ok),
        "approvals": sum(e.action == "restore.approve" for e in ok),
        "exact restores": sum(e.action == "restore" and e.mode == "exact" for e in ok),
        "model restores": sum(e.action == "restore" and e.mode == "model" for e in ok),
        "refusals": sum(e.outcome == "refused" for e in events),
        "failures": sum(e.outcome == "failed" for e in events),
    }


def build_from_bundle(
    path: Path,
    case: str,
    *,
    public_key: bytes | None = None,
    anchors: Anchors = Anchors(),
    source: Source | None = None,
    now: datetime | None = None,
) -> CaseReport:
    """The report of ``case`` from a bundle or excerpt at ``path`` (steps 1-4 in the module docstring)."""
    report, fault = _verify(path, public_key, anchors)  # 1
    vault_id, entries, unreadable = _read_case(path, case)  # 2
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    if source is None:
        source = Source("bundle", path.name, vault_id, moment.strftime("%Y-%m-%d %H:%M:%S UTC"))
    events = tuple(event(entry, _when) for entry in entries)  # 3
    first_bad = 0 if fault is None else (fault.seq or 1)  # a fault without an entry taints them all
    untrusted = frozenset(e.seq for e in events if fault is not None and e.seq >= first_bad)
    key_source = "vault" if source.kind == "vault" else "pinned" if public_key is not None else "file"
    verification = _verification(report, fault, key_source=key_source, checkpoint_file=anchors.file_name)
    return CaseReport(
        case=case,
        source=source,
        verification=verification,
        events=events,
        actors=_actors(events),  # 4
        counts=_counts(events),
        unreadable=unreadable,
        untrusted=untrusted,
    )


class LiveLog(Protocol):
    """A live vault's log as a report reads it: a local ``Vault`` or the vault service's client."""

    @property
    def public_key(self) -> bytes: ...

    def export_audit(self, path: str | os.PathLike[str], where: AuditFilter | None = None) -> int: ...


def build_from_vault(
    log: LiveLog,
    vault_id: str,
    case: str,
    *,
    display_name: str,
    anchors: Anchors = Anchors(),
    now: datetime | None = None,
) -> CaseReport:
    """The report of ``case`` from the live vault ``vault_id`` (local, or through the service): its excerpt
    exported (audited) and built as offline."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    source = Source("vault", display_name, vault_id, moment.strftime("%Y-%m-%d %H:%M:%S UTC"))
    with tempfile.TemporaryDirectory(prefix="ifadit-report-") as folder:
        excerpt = Path(folder) / "case.audit.jsonl"
        log.export_audit(excerpt, AuditFilter(case=case))
        return build_from_bundle(
            excerpt,
            case,
            public_key=log.public_key,
            anchors=anchors,
            source=source,
        )
