"""The classic baselines (blur, pixelate, mask) on real aligned faces, and the backend registry."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from ifadit.backends.base import BACKENDS, Backend, get_backend
from ifadit.backends.classic import BlurBackend, MaskBackend, PixelateBackend
from ifadit.errors import BackendUnavailable
from ifadit.faces.align import align_face
from ifadit.faces.blend import face_mask, paste_back
from ifadit.faces.detect import DlibHogDetector
from ifadit.media.image import read_image


@pytest.fixture(scope="module")
def crops(shared_dir: Path) -> np.ndarray:
    """Canonical 128 px crops of three dlib-johns faces (real photographs)."""
    paths = sorted((shared_dir / "data/reid/dlib-johns").glob("*/*.jpg"))[::11][:3]
    detector = DlibHogDetector(upsample=1)
    out = []
    for path in paths:
        image = read_image(path)
        out.append(align_face(image, detector.detect(image)[0].landmarks, 128).crop)
    return np.stack(out)


def laplacian_energy(crop: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


@pytest.mark.parametrize("name", ["blur", "pixelate", "mask"])
def test_backend_contract(crops: np.ndarray, name: str) -> None:
    backend: Backend = get_backend(name)
    assert backend.name == name and backend.reversible is False and backend.colour_match is False
    out = backend.anonymize_crops(crops, None)
    assert out.shape == crops.shape and out.dtype == np.uint8
    assert not np.array_equal(out, crops)
    np.testing.assert_array_equal(
        backend.anonymize_crops(crops, b"k" * 32), out
    )  # key ignored, deterministic
    np.testing.assert_array_equal(backend.anonymize_crops(crops[1:2], None), out[1:2])  # per crop, batch-free
    with pytest.raises(BackendUnavailable, match=f"backend '{name}' is not reversible"):
        backend.restore_crops(out, b"k" * 32)


def test_blur_removes_fine_detail(crops: np.ndarray) -> None:
    out = BlurBackend().anonymize_crops(crops, None)
    for before, after in zip(crops, out, strict=True):
        assert laplacian_energy(after) < 0.02 * laplacian_energy(before)
        assert abs(float(after.mean()) - float(before.mean())) < 3  # colours kept, detail gone
    weak = BlurBackend(sigma=0.01).anonymize_crops(crops, None)
    assert laplacian_energy(weak[0]) > laplacian_energy(out[0])


def test_pixelate_makes_flat_cells_of_the_mean_colour(crops: np.ndarray) -> None:
    out = PixelateBackend(block=16).anonymize_crops(crops, None)
    for before, after in zip(crops, out, strict=True):
        for y in range(0, 128, 16):
            for x in range(0, 128, 16):
                cell = after[y : y + 16, x : x + 16].reshape(-1, 3)
                assert (cell == cell[0]).all()
                assert (
                    np.abs(cell[0].astype(float) - before[y : y + 16, x : x + 16].mean(axis=(0, 1))).max()
                    <= 1
                )
    coarse = PixelateBackend(block=32).anonymize_crops(crops, None)
    assert len(np.unique(coarse[0].reshape(-1, 3), axis=0)) <= 16


def test_mask_fills_one_colour(crops: np.ndarray) -> None:
    out = MaskBackend(colour=(255, 0, 128)).anonymize_crops(crops, None)
    assert (out.reshape(-1, 3) == [255, 0, 128]).all()


def test_pipeline_on_the_astronaut(astronaut: np.ndarray) -> None:
    """detect -> align at the backend's size -> anonymize -> paste back: only the face changes."""
    face = DlibHogDetector().detect(astronaut)[0]
    for name in ("blur", "pixelate", "mask"):
        backend = get_backend(name)
        aligned = align_face(astronaut, face.landmarks, backend.crop_size)
        new = backend.anonymize_crops(np.asarray(aligned.crop)[None], None)[0]
        out = paste_back(astronaut, aligned, new, colour_match=backend.colour_match)
        mask = face_mask(aligned, astronaut.shape)
        np.testing.assert_array_equal(out[mask == 0], astronaut[mask == 0])
        core = mask == 1
        assert np.abs(out.astype(int) - astronaut)[core].mean() > 8, name
    masked = paste_back(astronaut, aligned, new, colour_match=False)
    assert (masked[face_mask(aligned, astronaut.shape) == 1] == 0).all()  # the mask stays black


def test_registry_and_options() -> None:
    assert {"blur", "pixelate", "mask"} <= set(BACKENDS)
    assert get_backend("blur", sigma=0.1, crop_size=256).crop_size == 256
    assert get_backend("pixelate", block=8).block == 8
    with pytest.raises(ValueError, match="unknown backend 'swirl'"):
        get_backend("swirl")
    with pytest.raises(ValueError, match="need 2 <= block <= crop_size"):
        PixelateBackend(block=1)
    with pytest.raises(ValueError, match="need sigma > 0"):
        BlurBackend(sigma=0)
    with pytest.raises(ValueError, match="colour must be three values"):
        MaskBackend(colour=(0, 0, 300))


def test_unavailable_backend_module_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(BACKENDS, "needs-extra", "ifadit_missing_extra_module:Backend")
    with pytest.raises(BackendUnavailable, match="needs a package that is not installed"):
        get_backend("needs-extra")


def test_rejects_bad_crop_batches(crops: np.ndarray) -> None:
    backend = BlurBackend()
    with pytest.raises(ValueError, match=r"uint8 crops \[N, S, S, 3\]"):
        backend.anonymize_crops(crops[0], None)
    with pytest.raises(ValueError, match="square RGB crops"):
        backend.anonymize_crops(crops[:, :, :64], None)
    with pytest.raises(ValueError, match="uint8 crops"):
        backend.anonymize_crops(crops.astype(np.float32), None)
