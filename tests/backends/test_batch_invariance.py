"""The shipped iFADIT model gives each face the same pixels, bit for bit, however faces are batched.

Real faces: the first dlib chips of ../shared/data/reid/dlib-johns (canonical geometry, 150 px, resized to the
model's 64 px by `map_crops`), anonymized and restored with pretrained/ifadit-64. Batched kernels choose their
reduction order by batch size and thread count; `map_crops` runs each face alone on a pinned thread count, so
neither the batch nor the caller's threads may move a level. About 30 s on one core.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from ifadit.backends import crop_model
from ifadit.backends.ifadit import IfaditBackend, is_shipped
from ifadit.media.image import read_image

KEY = bytes(range(32))
FACES = 8


@pytest.fixture(scope="module")
def backend() -> IfaditBackend:
    if not is_shipped():
        pytest.skip("pretrained/ifadit-64 is not in this checkout")
    return IfaditBackend()


@pytest.fixture(scope="module")
def chips(shared_dir: Path) -> np.ndarray:
    paths = sorted((shared_dir / "data" / "reid" / "dlib-johns").rglob("*.jpg"))[:FACES]
    return np.stack([read_image(path) for path in paths])


@pytest.fixture(scope="module")
def alone(backend: IfaditBackend, chips: np.ndarray) -> np.ndarray:
    """Each face anonymized on its own: the reference."""
    return np.concatenate([backend.anonymize_crops(chips[i : i + 1], KEY) for i in range(len(chips))])


def _in_batches(run: Callable[[np.ndarray, bytes], np.ndarray], crops: np.ndarray, size: int) -> np.ndarray:
    return np.concatenate([run(crops[i : i + size], KEY) for i in range(0, len(crops), size)])


@pytest.mark.parametrize("size", [2, 7, 32])
def test_surrogates_do_not_depend_on_batch_size(
    backend: IfaditBackend, chips: np.ndarray, alone: np.ndarray, size: int
) -> None:
    crops = np.concatenate([chips] * (size // FACES or 1))  # 32: every face four times in one batch
    expected = np.concatenate([alone] * (size // FACES or 1))
    assert np.array_equal(_in_batches(backend.anonymize_crops, crops, size), expected)


def test_surrogates_do_not_depend_on_the_other_faces(
    backend: IfaditBackend, chips: np.ndarray, alone: np.ndarray
) -> None:
    mixed = np.stack([chips[3], chips[0][::-1], chips[3], np.zeros_like(chips[0]), chips[5]])
    out = backend.anonymize_crops(mixed, KEY)
    assert np.array_equal(out[[0, 2, 4]], alone[[3, 3, 5]])


def test_restores_do_not_depend_on_the_batch_or_the_callers_threads(
    backend: IfaditBackend, alone: np.ndarray
) -> None:
    surrogates = alone[:3]
    one_by_one = np.concatenate([backend.restore_crops(s[None], KEY, pasted_at=1.0) for s in surrogates])
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # as a serial run on two cores; Ray actors run with one
    try:
        together = backend.restore_crops(surrogates, KEY, pasted_at=1.0)
        assert torch.get_num_threads() == 2  # the pinned count is restored afterwards
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(together, one_by_one)


def test_the_model_runs_on_the_pinned_thread_count(backend: IfaditBackend, chips: np.ndarray) -> None:
    seen: list[int] = []

    def net(img: torch.Tensor) -> torch.Tensor:
        seen.append(torch.get_num_threads())
        return img

    crop_model.map_crops(chips[:2], backend.crop_size, backend.device, net)
    assert seen == [crop_model.MODEL_THREADS] * 2
