"""Evaluation sets: folder-per-identity, and flat folders read as one identity per image."""

from __future__ import annotations

from pathlib import Path

import pytest

from ifadit.eval.anonymity import chance_rank1
from ifadit.eval.dataset import is_flat, load_eval_set


def test_identity_folders_keep_their_labels(shared_dir: Path) -> None:
    root = shared_dir / "data" / "reid" / "dlib-johns"
    faces = load_eval_set(root, size=64, limit=4)
    assert not is_flat(root) and faces.crops.shape == (4, 64, 64, 3)
    assert all(p.parent.name == label for p, label in zip(faces.paths, faces.labels, strict=True))


def test_a_flat_folder_is_one_identity_per_image(shared_dir: Path) -> None:
    root = shared_dir / "data" / "celeba-crops" / "test"
    faces = load_eval_set(root, size=64, limit=6)
    assert is_flat(root) and len(faces.crops) + len(faces.missed) == 6
    assert len(set(faces.labels)) == len(faces.labels)  # nobody twice: rank-1 is undefined
    assert chance_rank1(faces.labels) is None
    assert all(p.parent == root and p.is_file() for p in faces.paths + faces.missed)


def test_a_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a folder"):
        load_eval_set(tmp_path / "absent", size=64)
