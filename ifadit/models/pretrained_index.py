"""`pretrained/index.json`: every shipped model folder with its model id and the sha256 of each of its files."""

from __future__ import annotations

import json
from pathlib import Path

from ifadit.models.model_folder import sha256_file

INDEX_FILE = "index.json"


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
