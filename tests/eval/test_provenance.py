"""Training-data overlap warnings from a model card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ifadit.errors import ModelError
from ifadit.eval.provenance import overlaps, training_data, training_warning


def card(folder: Path, data: object) -> Path:
    path = folder / "model_card.json"
    path.write_text(json.dumps({"model_id": "m", "training_data": data}))
    return path


def test_overlap_is_same_inside_or_containing(tmp_path: Path) -> None:
    train = tmp_path / "celeba" / "train"
    assert overlaps(train, [train]) == [train]
    assert overlaps(train / "sub", [train]) == [train]
    assert overlaps(tmp_path / "celeba", [train]) == [train]
    assert overlaps(tmp_path / "celeba" / "test", [train]) == []


def test_warning_names_the_overlap_and_is_silent_otherwise(tmp_path: Path) -> None:
    train = tmp_path / "train"
    path = card(tmp_path, [str(train)])
    assert training_data(path) == [train]
    warning = training_warning(path, train)
    assert warning is not None and str(train) in warning and "training data" in warning
    assert training_warning(path, tmp_path / "test") is None
    assert training_warning(None, train) is None and training_warning(tmp_path / "absent.json", train) is None


def test_a_malformed_card_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="list of paths"):
        training_data(card(tmp_path, "not a list"))
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ModelError, match="unreadable"):
        training_data(broken)
