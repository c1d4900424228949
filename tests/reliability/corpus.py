"""The regression corpus: inputs that once crashed a parser, kept under tests/corpus/<target>/ and replayed.

A fuzz test that finds a crash saves the input here (`save`) before failing, so the next run replays it
through `test_corpus.py` whether or not Hypothesis finds it again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
TARGETS = ("image", "manifest-json", "manifest-png", "manifest-jpeg", "bundle")


def save(target: str, data: bytes) -> Path:
    """Store `data` as a regression input for `target`, named by its SHA-256 (idempotent)."""
    assert target in TARGETS, target
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(data).hexdigest()[:16]}.bin"
    path.write_bytes(data)
    return path


def cases(target: str) -> list[Path]:
    """Every stored input for `target`, sorted."""
    folder = CORPUS / target
    return sorted(folder.glob("*.bin")) if folder.is_dir() else []
