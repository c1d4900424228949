"""ifadit.eval.reid: identity folders read as canonical crops, with the images where no face was found."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from ifadit.eval.reid import load_reid_set


def test_reads_identity_folders_as_labelled_crops(tmp_path: Path, astronaut: np.ndarray) -> None:
    for name, image in [
        ("eileen/a.png", astronaut),
        ("eileen/b.jpg", astronaut[:, ::-1]),
        ("cup/c.png", data.coffee()),
    ]:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.fromarray(np.ascontiguousarray(image)).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an identity folder")
    reid = load_reid_set(tmp_path, size=64, upsample=0)
    assert reid.crops.shape == (2, 64, 64, 3) and reid.crops.dtype == np.uint8
    assert reid.labels == ["eileen", "eileen"]
    assert [p.name for p in reid.paths] == ["a.png", "b.jpg"]
    assert [p.name for p in reid.missed] == ["c.png"]


def test_limit_spreads_over_the_set(shared_dir: Path) -> None:
    reid = load_reid_set(shared_dir / "data" / "reid" / "dlib-johns", limit=5)
    assert reid.crops.shape == (5, 150, 150, 3)
    assert len(set(reid.labels)) == 5  # 5 identities x 11 images: one image from each


def test_a_set_without_faces_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "cup").mkdir()
    Image.fromarray(data.coffee()).save(tmp_path / "cup" / "c.png")
    with pytest.raises(ValueError, match="no face found in any image"):
        load_reid_set(tmp_path)
