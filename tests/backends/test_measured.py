"""The caveat a model restore prints and the rates its report holds: the figures of the model's own card, or
only the general warning (and no rates)."""

from __future__ import annotations

import json
from pathlib import Path

from ifadit.backends.measured import measured_rates, restore_caveat

ROWS = {
    "deepface": [
        {"recognizer": "dlib", "restored_match": 0.754, "random_key_match": 0.295, "near_key_match": 0.443},
        {"recognizer": "faceres", "restored_match": 0.0, "random_key_match": 0.0, "near_key_match": 0.0},
    ],
    "dlib-johns": [
        {"recognizer": "dlib", "restored_match": 0.564, "random_key_match": 0.073, "near_key_match": 0.036},
    ],
}


def write_card(folder: Path, card: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model_card.json").write_text(json.dumps(card))
    return folder


def test_caveat_quotes_the_measured_spans_of_the_matching_model(tmp_path: Path) -> None:
    folder = write_card(tmp_path / "m", {"model_id": "ifadit-abc", "acceptance": ROWS})
    line = restore_caveat(measured_rates(folder, "ifadit-abc"))
    assert line.startswith("note: a model restore is an investigative lead, not an identification")
    assert "verified as the original (dlib) for 56%-75% of faces" in line
    assert "with a wrong key for 4%-44%" in line
    assert "for 0% of faces" in restore_caveat(measured_rates(folder, "ifadit-abc", recognizer="faceres"))


def test_caveat_without_figures_for_another_model_or_a_bad_card(tmp_path: Path) -> None:
    general = "note: a model restore is an investigative lead, not an identification"
    folder = write_card(tmp_path / "m", {"model_id": "ifadit-abc", "acceptance": ROWS})
    assert restore_caveat(measured_rates(folder, "ifadit-other")) == general
    assert restore_caveat(measured_rates(tmp_path / "absent", "ifadit-abc")) == general
    assert restore_caveat(measured_rates(write_card(tmp_path / "list", [1, 2]), None)) == general
    broken = {"model_id": "x", "acceptance": {"s": [{"recognizer": "dlib", "restored_match": "n/a"}]}}
    assert restore_caveat(measured_rates(write_card(tmp_path / "broken", broken), "x")) == general
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "model_card.json").write_text("{not json")
    assert restore_caveat(measured_rates(tmp_path / "junk", "x")) == general


def test_rates_for_the_restore_report(tmp_path: Path) -> None:
    folder = write_card(tmp_path / "m", {"model_id": "ifadit-abc", "acceptance": ROWS})
    assert measured_rates(folder, "ifadit-abc") == {
        "recognizer": "dlib",
        "restored_match": [0.564, 0.754],
        "wrong_key_match": [0.036, 0.443],
        "source": "model_card.json",
    }
    assert measured_rates(folder, "ifadit-other") is None
    assert measured_rates(tmp_path / "absent", "ifadit-abc") is None
