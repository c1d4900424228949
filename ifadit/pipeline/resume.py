"""Resumable jobs: the journal of published outputs, and which planned items a rerun may skip.

After a run's audit entry commits and before its outputs are renamed into place, the engine records each
output in the hidden journal `.ifadit-journal.json` of the output root: the target (relative to the root),
a keyed MAC of the input file's SHA-256, the output file's SHA-256, the key handle and version, the backend
and the audit sequence number. The MAC key is derived from the vault's signing key (a deterministic Ed25519
signature over a fixed label, never stored), so the journal cannot confirm a guessed original to anyone
without the vault, unlike a plain digest.

A rerun skips an item only when all of these hold: the target exists and hashes to the recorded digest,
its manifest's signature verifies under this vault, the manifest's key handle/version and backend are this
run's, and the MAC of the current input matches. Anything else is anonymized again. Skipped items are not
re-anonymized and not counted in the new audit entry, so a job killed halfway and restarted never audits
an output twice; a rerun with everything skipped appends no entry at all.

A kill after a batch's audit entry commits but before its outputs are renamed into place would leave an
entry for outputs nobody sees, and the rerun would anonymize and audit them again. So, inside the batch's
transaction and just before it commits, the engine writes a commit record (`write_pending`) into the
staging folder: the entry's sequence number and output-list digest, and each staged result's target and
journal entry. The next run into the same folder (`recover_committed`) finds the records of killed runs,
asks the vault whether entry `audit_seq` is that batch's committed entry (same output-list digest), and if
so renames the staged results whose digests match into place and journals them, also for a run without
`--checkpoint`; the rerun then skips them like any journalled output. A record whose entry never committed
is ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ifadit.errors import ManifestError
from ifadit.media.digests import file_sha256
from ifadit.media.files import atomic_write_bytes
from ifadit.media.manifest import read_manifest, verify_manifest
from ifadit.pipeline.anonymize import MANIFEST_PURPOSE, ItemResult, ManifestStamp
from ifadit.pipeline.inputs import Item
from ifadit.pipeline.staging import STAGING_PREFIX, move_into_place
from keyvault import Vault, verify_detached

JOURNAL_NAME = ".ifadit-journal.json"
JOURNAL_FORMAT = "ifadit-journal/1"
_MAC_LABEL = b"ifadit-resume-journal/1"
PENDING_NAME = "committing.json"
PENDING_FORMAT = "ifadit-committing/1"


def journal_key(vault: Vault) -> bytes:
    """The journal's MAC key: SHA-256 of the vault's (deterministic) signature over a fixed label."""
    return hashlib.sha256(vault.sign_detached("resume-journal", _MAC_LABEL + vault.id.encode())).digest()


def input_mac(key: bytes, input_sha256: str) -> str:
    """Keyed MAC of an input's SHA-256 (hex)."""
    return hmac.new(key, input_sha256.encode("ascii"), hashlib.sha256).hexdigest()


@dataclass
class Journal:
    """The journal of one output root; `load` it, `skippable` to plan, `record` + `save` after each commit."""

    root: Path
    key: bytes
    entries: dict[str, dict[str, Any]]

    @property
    def path(self) -> Path:
        return self.root / JOURNAL_NAME

    @classmethod
    def load(cls, vault: Vault, root: Path) -> Journal:
        """The journal in `root` (empty when there is none yet); `ManifestError` names a corrupt one."""
        path = Path(root) / JOURNAL_NAME
        entries: dict[str, dict[str, Any]] = {}
        if path.is_file():
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise ManifestError(
                    f"{path}: resume journal is not valid JSON",
                    hint="delete it to anonymize everything again",
                ) from None
            if not isinstance(raw, dict) or raw.get("format") != JOURNAL_FORMAT:
                raise ManifestError(
                    f"{path}: not an {JOURNAL_FORMAT} journal", hint="delete it to start over"
                )
            entries = dict(raw.get("outputs", {}))
        return cls(Path(root), journal_key(vault), entries)

    def name(self, target: Path) -> str:
        """The journal's name for `target`: its path relative to the root."""
        return Path(target).resolve().relative_to(self.root.resolve()).as_posix()

    def skippable(self, vault: Vault, item: Item, stamp: ManifestStamp) -> ItemResult | None:
        """The finished result of `item` when its published output verifies for this run, else None."""
        entry = self.entries.get(self.name(item.target))
        if entry is None or not item.target.exists() or not item.source.exists():
            return None
        if (entry.get("key_handle"), entry.get("key_version"), entry.get("backend")) != (
            stamp.key_handle,
            stamp.key_version,
            stamp.backend,
        ):
            return None
        output_sha256 = file_sha256(item.target)
        if output_sha256 != entry.get("output_sha256"):
            return None
        try:
            manifest = read_manifest(item.target)
            if manifest is None:
                return None
            verify_manifest(
                manifest, lambda sig, data: verify_detached(vault.public_key, MANIFEST_PURPOSE, data, sig)
            )
        except ManifestError:
            return None
        ran = (manifest.vault_id, manifest.key_handle, manifest.key_version, manifest.backend)
        if (*ran, manifest.model_id, manifest.mask_scale) != (
            vault.id,
            stamp.key_handle,
            stamp.key_version,
            stamp.backend,
            stamp.model_id,
            stamp.mask_scale,
        ):
            return None
        input_sha256 = file_sha256(item.source)
        if not hmac.compare_digest(input_mac(self.key, input_sha256), str(entry.get("input_mac", ""))):
            return None
        return ItemResult(
            item.source,
            item.target,
            item.kind,
            faces=len(manifest.faces),
            input_sha256=input_sha256,
            output_sha256=output_sha256,
            manifest=manifest,
            resumed=True,
        )

    def entry_for(self, result: ItemResult, audit_seq: int) -> dict[str, Any]:
        """The journal entry of one finished, successful result of audit entry `audit_seq`."""
        assert result.manifest is not None, "entry_for needs a finished result"
        return {
            "input_mac": input_mac(self.key, result.input_sha256 or ""),
            "output_sha256": result.output_sha256,
            "key_handle": result.manifest.key_handle,
            "key_version": result.manifest.key_version,
            "backend": result.manifest.backend,
            "audit_seq": audit_seq,
        }

    def record(self, results: Sequence[ItemResult], audit_seq: int) -> None:
        """Add the committed, successful `results` of audit entry `audit_seq`."""
        for result in results:
            if result.error is None and result.manifest is not None:
                self.entries[self.name(result.target)] = self.entry_for(result, audit_seq)

    def save(self) -> None:
        """Write the journal atomically."""
        self.root.mkdir(parents=True, exist_ok=True)
        body = {"format": JOURNAL_FORMAT, "outputs": self.entries}
        atomic_write_bytes(self.path, json.dumps(body, sort_keys=True, indent=1).encode("utf-8"))


def write_pending(
    folder: Path, journal: Journal, audit_seq: int, results: Sequence[ItemResult], digest: str
) -> None:
    """Write the commit record of a batch into its staging `folder` (inside its transaction, before it commits).

    `digest` is the output-list digest the batch's audit entry `audit_seq` will carry.
    """
    outputs = [
        {
            "staged": result.staged.relative_to(folder).as_posix(),
            "target": journal.name(result.target),
            "journal": journal.entry_for(result, audit_seq),
        }
        for result in results
        if result.error is None and result.manifest is not None and result.staged is not None
    ]
    body = {"format": PENDING_FORMAT, "audit_seq": audit_seq, "outputs_digest": digest, "outputs": outputs}
    atomic_write_bytes(folder / PENDING_NAME, json.dumps(body, sort_keys=True).encode("utf-8"))


def clear_pending(folder: Path) -> None:
    """Drop the commit record once its batch is published."""
    (folder / PENDING_NAME).unlink(missing_ok=True)


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def recover_committed(journal: Journal, committed: Callable[[int, str], bool]) -> list[Path]:
    """Publish and journal what killed runs committed but never published; the targets moved into place.

    `committed(seq, digest)` says whether audit entry `seq` is a committed anonymize entry whose output-list
    digest is `digest`. Each recovered staging folder is deleted; a folder whose record did not commit is
    left alone (its run may still be going).
    """
    recovered = []
    for pending in sorted(journal.root.glob(f"{STAGING_PREFIX}*/{PENDING_NAME}")):
        try:
            record = json.loads(pending.read_text(encoding="utf-8"))
            seq, digest, outputs = (
                int(record["audit_seq"]),
                str(record["outputs_digest"]),
                list(record["outputs"]),
            )
            moves = [(pending.parent / out["staged"], journal.root / out["target"], out) for out in outputs]
        except (ValueError, KeyError, TypeError):
            continue  # not a record this version wrote: leave the folder for a person to look at
        if record.get("format") != PENDING_FORMAT or not committed(seq, digest):
            continue
        for staged, target, out in moves:
            if not (_inside(staged, pending.parent) and _inside(target, journal.root)):
                continue
            if staged.exists() and file_sha256(staged) == out["journal"].get("output_sha256"):
                move_into_place(staged, target)
                recovered.append(target)
            journal.entries[out["target"]] = dict(out["journal"])
        journal.save()
        shutil.rmtree(pending.parent, ignore_errors=True)
    return recovered
