"""Shared fixtures: real images, the shared data folder, and a deterministic torch setup."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("IFADIT_SHARED", REPO_ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """`../shared` beside the checkout (CI always has it); tests that need it skip with a reason elsewhere."""
    if not SHARED.is_dir():
        pytest.skip(f"../shared not found at {SHARED}: the published vectors and face data live there")
    return SHARED


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """scikit-image's public-domain astronaut photo, RGB uint8 HxWx3, one face near (175,76)-(265,166)."""
    from skimage import data

    return data.astronaut()
