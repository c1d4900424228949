"""The sample sheet: photos of a set through anonymize, restore and a wrong key, composed in four columns."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from ifadit.eval.sheet import COLUMNS, HEADER, compose, sheet_rows, write_sheet
from ifadit.media.image import read_image

RIGHT, WRONG = bytes(32), bytes(range(32))


@dataclass(frozen=True)
class NegativeBackend:
    """Anonymize: colour negative; restore: negative again with the right key, grey with any other."""

    name: str = "negative"
    reversible: bool = True
    colour_match: bool = False
    crop_size: int = 64

    def anonymize_crops(self, crops: np.ndarray, key: bytes | None) -> np.ndarray:
        return 255 - crops

    def restore_crops(
        self, crops: np.ndarray, key: bytes | None, pasted_at: float | None = None
    ) -> np.ndarray:
        return 255 - crops if key == RIGHT else np.full_like(crops, 128)


@pytest.fixture(scope="module")
def small_set(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three dlib-johns photos of two people, in a folder named like the set (same HOG upsampling)."""
    root = tmp_path_factory.mktemp("sets") / "dlib-johns"
    johns = sorted((shared_dir / "data" / "reid" / "dlib-johns").glob("*"))[:2]
    for person, count in zip(johns, (2, 1), strict=True):
        (root / person.name).mkdir(parents=True)
        for photo in sorted(person.glob("*.jpg"))[:count]:
            shutil.copy(photo, root / person.name / photo.name)
    return root


def test_rows_hold_the_photo_its_surrogate_its_restore_and_a_wrong_key(small_set: Path) -> None:
    rows = sheet_rows(small_set, NegativeBackend(), (RIGHT, WRONG), count=2)
    assert len(rows) == 2 and all(row.faces == 1 for row in rows)
    original, anonymized, restored, wrong = rows[0].images
    assert (
        original.shape == anonymized.shape == restored.shape == wrong.shape == read_image(rows[0].path).shape
    )
    changed = np.abs(anonymized.astype(int) - original).max(axis=-1) > 40
    assert 0.2 < changed.mean() < 1.0  # the face is replaced, the photo around it is not
    assert (
        np.abs(restored.astype(int) - original)[changed].mean()
        < 0.2 * np.abs(anonymized.astype(int) - original)[changed].mean()
    )
    assert np.abs(wrong.astype(int) - original)[changed].mean() > 20


def test_the_sheet_is_composed_in_blocks_and_written(small_set: Path, tmp_path: Path) -> None:
    path, rows = write_sheet(small_set, NegativeBackend(), (RIGHT, WRONG), 3, tmp_path / "sheet.jpg")
    sheet = read_image(path)
    side = rows[0].images[0].shape[0]  # dlib-johns photos are 150 px squares
    assert len(rows) == 3 and path.read_bytes()[:2] == b"\xff\xd8"
    assert sheet.shape[1] > 2 * len(COLUMNS) * side and sheet.shape[0] >= HEADER + 2 * side
    one_block = compose(rows, blocks=1, max_height=100)
    assert one_block.shape[0] >= HEADER + 3 * 100 and one_block.shape[1] < len(COLUMNS) * 110
    with pytest.raises(ValueError, match="no rows"):
        compose([])
