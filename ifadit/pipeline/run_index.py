"""The run index: `run.json` in the output folder (a run that names a single output file writes none: that
file's manifest and the command's summary say the same).

A person opening a release folder sees what made it: each invocation appends one run with its inputs (as
named on the command line), outputs (relative to the folder) and their SHA-256, faces per file, the backend
and model, the key handle and version, and the audit entries to look up (`ifadit audit show`). It holds no
secrets and no digest of any original (the audit entry carries the vault's keyed digest of the inputs),
nor the case name. Input paths are as given: leave the index out of a release if they are sensitive.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ifadit import __version__
from ifadit.errors import InputError
from ifadit.media.files import atomic_write_bytes
from ifadit.pipeline.anonymize import AnonymizeOptions, ItemResult

RUN_INDEX_NAME = "run.json"
RUN_INDEX_FORMAT = "ifadit-runs/1"


@dataclass(frozen=True)
class RunRecord:
    """One invocation's entry in the index."""

    backend: str
    model_id: str | None
    key_handle: str | None
    key_version: int | None
    options: AnonymizeOptions
    audit_seqs: tuple[int, ...]
    items: Sequence[ItemResult]

    def as_dict(self, root: Path) -> dict[str, Any]:
        """JSON-ready form, outputs relative to `root`."""
        return {
            "tool_version": __version__,
            "backend": self.backend,
            "model_id": self.model_id,
            "key_handle": self.key_handle,
            "key_version": self.key_version,
            "audit_seqs": list(self.audit_seqs),
            "sealed_originals": self.options.seal_original,
            "keep_metadata": self.options.keep_metadata,
            "files": [_file(item, root) for item in self.items],
            "faces": sum(item.faces for item in self.items if item.error is None),
        }


def _file(item: ItemResult, root: Path) -> dict[str, Any]:
    target = item.target.resolve()
    return {
        "input": str(item.source),
        "output": None if item.error else target.relative_to(root.resolve()).as_posix(),
        "kind": item.kind,
        "faces": item.faces,
        "output_sha256": item.output_sha256,
        "resumed": item.resumed,
        "error": item.error,
    }


def read_runs(path: Path) -> list[Any]:
    """The runs already in the index at `path` ([] when there is none); `InputError` for a foreign file,
    checked before a run starts so that it is never overwritten."""
    if not path.exists():
        return []
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        if body["format"] != RUN_INDEX_FORMAT:
            raise KeyError("format")
        return list(body["runs"])
    except (ValueError, KeyError, TypeError, OSError):
        raise InputError(
            f"{path}: exists and is not an {RUN_INDEX_FORMAT} run index", hint="move it away and run again"
        ) from None


def append_run(path: Path, record: RunRecord) -> None:
    """Add `record` to the index at `path` (created when missing), atomically."""
    runs = read_runs(path)
    runs.append(record.as_dict(path.parent))
    text = json.dumps({"format": RUN_INDEX_FORMAT, "runs": runs}, indent=1, ensure_ascii=False)
    atomic_write_bytes(path, text.encode("utf-8") + b"\n")
