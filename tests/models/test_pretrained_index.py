"""pretrained/index.json entries: written per shipped folder, other entries kept, sha256 of every file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ifadit.models.pretrained_index import record_shipped


def test_entries_name_every_file_and_keep_the_others(tmp_path: Path) -> None:
    for name, text in (("a-64", "first"), ("b-64", "second")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_text(text)
        record_shipped(tmp_path, name, f"{name}-id")
    (tmp_path / "a-64" / "MODEL_CARD.md").write_text("card")
    index_path = record_shipped(tmp_path, "a-64", "a-64-new")
    index = json.loads(index_path.read_text())
    assert sorted(index) == ["a-64", "b-64"] and index["b-64"]["model_id"] == "b-64-id"
    assert index["a-64"]["model_id"] == "a-64-new" and index["a-64"]["folder"] == "a-64"
    assert index["a-64"]["files"] == {
        "MODEL_CARD.md": hashlib.sha256(b"card").hexdigest(),
        "model.safetensors": hashlib.sha256(b"first").hexdigest(),
    }
