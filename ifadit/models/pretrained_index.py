"""`pretrained/index.json`: every shipped model folder with its model id and the sha256 of each of its files.

Shipping writes an entry (`record_shipped`); `ifadit models list` reads them (`shipped_models`) and
`ifadit models verify` re-hashes every listed file (`verify_shipped`), so a corrupted or swapped weights file
is found before it anonymizes evidence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ifadit.errors import ModelError, ModelIntegrityError
from ifadit.models.model_folder import sha256_file
from ifadit.models.shipped import INDEX_FILE

CARD_MARKDOWN = "MODEL_CARD.md"


@dataclass(frozen=True)
class ShippedModel:
    """One index entry, as `ifadit models list` shows it."""

    name: str  # folder name under the pretrained root, e.g. "ifadit-64"
    model_id: str  # `<name>-<sha256[:12]>`, as manifests cite it
    folder: Path
    size: int  # bytes of the files the index lists
    summary: str  # the model card's first sentence ("" without a card)


def record_shipped(pretrained: Path, name: str, model_id: str) -> Path:
    """Write (or replace) the entry of folder `pretrained/<name>`, holding `model_id`, in the index; returns the
    index path. The other entries are kept; keys are sorted so the file diffs cleanly."""
    folder = pretrained / name
    index_path = pretrained / INDEX_FILE
    index = json.loads(index_path.read_text()) if index_path.is_file() else {}
    index[name] = {
        "model_id": model_id,
        "folder": name,
        "files": {f.name: sha256_file(f) for f in sorted(folder.iterdir()) if f.is_file()},
    }
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return index_path


def read_index(pretrained: Path) -> dict[str, Any]:
    """The parsed index of `pretrained`; `ModelError` naming the file when it is missing or malformed."""
    path = pretrained / INDEX_FILE
    try:
        index = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(
            f"{path} missing", hint="point IFADIT_PRETRAINED at a folder of shipped models"
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: unreadable ({exc})") from None
    if not isinstance(index, dict) or not all(isinstance(e, dict) and "files" in e for e in index.values()):
        raise ModelError(f"{path}: not a model index (each entry needs folder, model_id, files)")
    return index


def card_summary(folder: Path) -> str:
    """The first sentence of the model card's first paragraph ("" when the folder has no card)."""
    path = folder / CARD_MARKDOWN
    if not path.is_file():
        return ""
    paragraphs = [p for p in path.read_text().split("\n\n") if p.strip() and not p.lstrip().startswith("#")]
    text = " ".join(paragraphs[0].split()) if paragraphs else ""
    ends = [i for i in (text.find(". "), text.find(": ")) if i >= 0]
    return text[: min(ends)] if ends else text.rstrip(".")


def shipped_models(pretrained: Path) -> list[ShippedModel]:
    """Every entry of the index of `pretrained`, by name."""
    models = []
    for name, entry in sorted(read_index(pretrained).items()):
        folder = pretrained / entry.get("folder", name)
        size = sum((folder / f).stat().st_size for f in entry["files"] if (folder / f).is_file())
        models.append(ShippedModel(name, entry.get("model_id", ""), folder, size, card_summary(folder)))
    return models


def verify_shipped(pretrained: Path) -> list[Path]:
    """Re-hash every file the index lists; the checked paths. `ModelIntegrityError` names the first missing or
    altered file (and how many more are)."""
    checked, faults = [], []
    for name, entry in sorted(read_index(pretrained).items()):
        folder = pretrained / entry.get("folder", name)
        for file, expected in sorted(entry["files"].items()):
            path = folder / file
            if not path.is_file():
                faults.append(f"{path}: missing")
            elif sha256_file(path) != expected:
                faults.append(f"{path}: sha256 differs from {INDEX_FILE}")
            checked.append(path)
    if faults:
        more = f" (and {len(faults) - 1} more)" if len(faults) > 1 else ""
        raise ModelIntegrityError(
            faults[0] + more, hint="reinstall ifadit or restore the file; do not anonymize with it"
        )
    return checked
