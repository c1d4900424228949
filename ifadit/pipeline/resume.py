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
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ifadit.errors import ManifestError
from ifadit.media.image import atomic_write_bytes
from ifadit.media.manifest import read_manifest, verify_manifest
from ifadit.pipeline.anonymize import MANIFEST_PURPOSE, ItemResult, ManifestStamp
from ifadit.pipeline.inputs import Item
from ifadit.pipeline.outputs import file_sha256
from keyvault.vault import Vault, verify_detached

JOURNAL_NAME = ".ifadit-journal.json"
JOURNAL_FORMAT = "ifadit-journal/1"
_MAC_LABEL = b"ifadit-resume-journal/1"


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
                    f"{path}: resume journal is not valid JSON", hint="delete it to anonymize everything again"
                ) from None
            if not isinstance(raw, dict) or raw.get("format") != JOURNAL_FORMAT:
                raise ManifestError(f"{path}: not an {JOURNAL_FORMAT} journal", hint="delete it to start over")
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
        if (manifest.vault_id, manifest.key_handle, manifest.key_version, manifest.backend) != (
            vault.id,
            stamp.key_handle,
            stamp.key_version,
            stamp.backend,
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

    def record(self, results: Sequence[ItemResult], audit_seq: int) -> None:
        """Add the committed, successful `results` of audit entry `audit_seq`."""
        for result in results:
            if result.error is not None or result.manifest is None:
                continue
            self.entries[self.name(result.target)] = {
                "input_mac": input_mac(self.key, result.input_sha256 or ""),
                "output_sha256": result.output_sha256,
                "key_handle": result.manifest.key_handle,
                "key_version": result.manifest.key_version,
                "backend": result.manifest.backend,
                "audit_seq": audit_seq,
            }

    def save(self) -> None:
        """Write the journal atomically."""
        self.root.mkdir(parents=True, exist_ok=True)
        body = {"format": JOURNAL_FORMAT, "outputs": self.entries}
        atomic_write_bytes(self.path, json.dumps(body, sort_keys=True, indent=1).encode("utf-8"))
