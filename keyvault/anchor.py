"""Check an exported bundle against checkpoints kept outside the vault (`audit verify --since`).

A bundle proves itself only up to its own signed tree heads: whoever deletes the newest entries
together with the tree heads that cover them leaves a shorter bundle that verifies. A checkpoint
an auditor kept (or the vault's checkpoint file, or a witness's cosigned note) fixes the size and
root the log had; ``verify_since`` computes the RFC 6962 consistency proof from the bundle's
entries to each kept checkpoint and refuses a bundle that is shorter ("history truncated") or
whose prefix no longer hashes to the kept root ("rewritten"), locating the change between the
largest checkpoint that still matches and the first that does not.

Call it after ``keyvault.verify.verify_bundle`` has accepted the bundle: it reads the entry lines
without re-checking their structure.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from keyvault import checkpoint, merkle, note
from keyvault.errors import AuditVerificationError, CheckpointError
from keyvault.excerpt import STUB_PREFIX, stub_leaf
from keyvault.verify import VerifyReport

_HEAD_PREFIX = b'{"tree_head":'


@dataclass(frozen=True)
class BundleLeaves:
    """A verified bundle's identity and the leaf hashes of its entries, in order."""

    vault_id: str
    public_key: bytes
    leaves: list[bytes]


def bundle_leaves(path: str | os.PathLike[str]) -> BundleLeaves:
    """The vault id, embedded public key and entry leaf hashes of a bundle (or excerpt) ``verify_bundle`` accepted."""
    sha256 = hashlib.sha256
    with Path(path).open("rb") as handle:
        header = json.loads(handle.readline())
        leaves = []
        for line in handle:
            if line.startswith(_HEAD_PREFIX):
                break
            hidden = line.startswith(STUB_PREFIX)  # an excerpt's hidden entry carries its leaf hash
            leaves.append(stub_leaf(line[:-1]) if hidden else sha256(b"\x00" + line[:-1]).digest())
    return BundleLeaves(str(header["vault_id"]), base64.b64decode(header["public_key"]), leaves)


@dataclass(frozen=True)
class SinceReport:
    """What ``verify_since`` checked: how many kept checkpoints, the newest size, and its cosigners."""

    checkpoints: int
    newest_size: int
    witnesses: tuple[str, ...]  # names of the witnesses whose cosignature on the newest one verified
    entries: int  # entries in the bundle

    def summary(self) -> str:
        cosigned = f", cosigned by {', '.join(self.witnesses)}" if self.witnesses else ""
        since = self.entries - self.newest_size
        return (
            f"extends {self.checkpoints} kept checkpoint{'s' if self.checkpoints != 1 else ''} "
            f"(newest at size {self.newest_size}{cosigned}): {since} entr{'y' if since == 1 else 'ies'} since"
        )


def _fail(message: str, seq: int | None) -> AuditVerificationError:
    return AuditVerificationError(
        message, seq=seq, hint="entries were deleted or rewritten after the checkpoint was taken"
    )


def verify_since(
    bundle: BundleLeaves,
    notes: Sequence[str],
    *,
    log_key: bytes | None = None,
    witnesses: Sequence[note.Verifier] = (),
) -> SinceReport:
    """Raise unless the bundle's log extends every checkpoint in ``notes`` (each signed by the vault's key).

    ``log_key`` pins the vault's public key (default: the bundle's); every witness in ``witnesses``
    must have cosigned the newest checkpoint.
    """
    verifier = checkpoint.log_verifier(bundle.vault_id, log_key or bundle.public_key)
    kept = checkpoint.open_all(notes, verifier)
    if not kept:
        raise CheckpointError("no checkpoint given to verify against")
    newest = kept[-1]
    times = [checkpoint.cosigned_at(newest, w) for w in witnesses]
    when = f" cosigned at {checkpoint.describe_time(max(times))}" if times else ""
    leaves, count = bundle.leaves, len(bundle.leaves)
    roots = merkle.prefix_roots(leaves, {c.size for c in kept if c.size <= count})
    matched = 0
    for signed in kept:
        size = signed.size
        label = f"the checkpoint{when if signed is newest else ''} at size {size}"
        if size > count:
            raise _fail(
                f"the bundle has {count} entries but {label} covers {size}: history truncated "
                f"(entries {count + 1}..{size} are gone)",
                count + 1,
            )
        if roots[size] != signed.checkpoint.root:
            first = matched + 1
            where = (
                f"entry {size} rewritten" if first == size else f"an entry among {first}..{size} rewritten"
            )
            raise _fail(f"the bundle is not consistent with {label}: {where}", first)
        matched = size
    if newest.size:
        proof = merkle.consistency_proof(leaves, newest.size)
        if not merkle.verify_consistency(
            newest.size, count, newest.checkpoint.root, merkle.root(leaves), proof
        ):
            raise _fail(f"the consistency proof from size {newest.size} to {count} fails", newest.size + 1)
    return SinceReport(len(kept), newest.size, tuple(w.name for w in witnesses), count)


def check_bundle_since(
    path: str | os.PathLike[str],
    report: VerifyReport,
    notes: Sequence[str],
    *,
    log_key: bytes | None = None,
    witnesses: Sequence[note.Verifier] = (),
) -> VerifyReport:
    """``report`` (from ``verify_bundle`` on ``path``) with the kept checkpoints ``notes`` checked too."""
    since = verify_since(bundle_leaves(path), notes, log_key=log_key, witnesses=witnesses)
    return dataclasses.replace(report, since=since)
