"""Fixtures: one tiny SDXL-shaped model folder per session (tests/diffusion/support.py) and its backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers", reason="the [diffusion] extra is not installed")
pytest.importorskip("transformers", reason="the [diffusion] extra is not installed")

from tests.diffusion.support import CROP_SIZE, write_tiny_sdxl  # noqa: E402


@pytest.fixture(scope="session")
def sdxl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_sdxl(tmp_path_factory.mktemp("tiny-sdxl"))


@pytest.fixture(scope="session")
def face_crops() -> np.ndarray:
    """Two real canonical crops at the tiny model's size: the astronaut's face, and it mirrored."""
    from skimage import data

    from ifadit.faces.align import align_face
    from ifadit.faces.registry import get_detector

    image = data.astronaut()
    face = get_detector("hog").detect(image)[0]
    crop = align_face(image, face.landmarks, CROP_SIZE).crop
    return np.ascontiguousarray(np.stack([crop, crop[:, ::-1]]))
