"""Crop cache from a folder of photos: dlib's canonical face chips, faceless images skipped, built once."""

from __future__ import annotations

from pathlib import Path

import dlib
import numpy as np
import pytest
from PIL import Image

from ifadit.errors import InputError
from ifadit.faces.detect import SHAPE_PREDICTOR_FILE, model_path
from ifadit.training.data import build_crop_cache, load_crops, prepare_crops


@pytest.fixture()
def photo_folder(shared_dir: Path, tmp_path: Path) -> Path:
    """Links to 5 celeba-crops training photos plus one flat grey image without a face."""
    folder = tmp_path / "photos"
    folder.mkdir()
    sources = sorted((shared_dir / "data" / "celeba-crops" / "train").glob("*.png"))[:5]
    for src in sources:
        (folder / src.name).symlink_to(src)
    Image.fromarray(np.full((100, 100, 3), 128, np.uint8)).save(folder / "zz-grey.png")
    return folder


def dlib_chip(path: Path, size: int) -> np.ndarray | None:
    """The reference: dlib HOG (upsample 1), best-scoring face, 5 landmarks, get_face_chip(padding=0.25)."""
    image = np.asarray(Image.open(path).convert("RGB"))
    rects, scores, _ = dlib.get_frontal_face_detector().run(image, 1, 0.0)
    if not rects:
        return None
    best = rects[int(np.argmax(scores))]
    shape = dlib.shape_predictor(str(model_path(SHAPE_PREDICTOR_FILE)))(image, best)
    return np.asarray(dlib.get_face_chip(image, shape, size=size, padding=0.25))


def test_folder_cache_matches_dlib_face_chips(photo_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "cache.npz"
    kept = build_crop_cache(photo_folder, out, resolution=32)
    with np.load(out) as data:
        images, names = data["images"], list(data["names"])
    expected = {p.name: dlib_chip(p, 32) for p in sorted(photo_folder.iterdir())}
    assert "zz-grey.png" not in names and expected["zz-grey.png"] is None
    assert names == [name for name, chip in expected.items() if chip is not None]
    assert kept == len(names) >= 3
    for name, image in zip(names, images, strict=True):
        assert np.array_equal(image, expected[name]), name
    assert load_crops(out, 32).shape == (kept, 3, 32, 32)


def test_prepare_crops_builds_once_and_passes_files_through(photo_folder: Path, tmp_path: Path) -> None:
    cache = prepare_crops(photo_folder, 32, tmp_path / "run")
    assert cache.parent == tmp_path / "run" and cache.name.startswith("crops-32-")
    stamp = cache.stat().st_mtime_ns
    assert prepare_crops(photo_folder, 32, tmp_path / "run") == cache and cache.stat().st_mtime_ns == stamp
    assert prepare_crops(cache, 32, tmp_path / "elsewhere") == cache


def test_folders_without_faces_or_images_are_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no image files"):
        build_crop_cache(empty, tmp_path / "c.npz", 32)
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(empty / "black.png")
    with pytest.raises(InputError, match="no face found in any of 1 images"):
        build_crop_cache(empty, tmp_path / "c.npz", 32)
    with pytest.raises(InputError, match="no such file or folder"):
        prepare_crops(tmp_path / "absent", 32, tmp_path)
