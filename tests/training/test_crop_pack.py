"""The JPEG crop pack: a cache survives pack and unpack within JPEG's error, and bad input names the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ifadit.errors import InputError
from ifadit.training.crop_pack import pack_crops, unpack_crops
from ifadit.training.data import load_crops


def smooth_crops(count: int, size: int) -> np.ndarray:
    """Seeded crops of smooth colour ramps (JPEG's error on them is small and stable)."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0.0, 1.0, size)
    crops = np.empty((count, size, size, 3), dtype=np.uint8)
    for i in range(count):
        low, high = rng.uniform(0, 120, 3), rng.uniform(130, 255, 3)
        mix = (ramp[:, None] + ramp[None, :])[..., None] / 2
        crops[i] = np.round(low + (high - low) * mix).astype(np.uint8)
    return crops


def test_pack_and_unpack_round_trip(tmp_path: Path) -> None:
    crops = smooth_crops(6, 64)
    names = np.array([f"face{i}" for i in range(6)])
    np.savez(tmp_path / "cache.npz", images=crops, names=names)

    assert pack_crops(tmp_path / "cache.npz", tmp_path / "pack.npz", quality=95) == 6
    assert unpack_crops(tmp_path / "pack.npz", tmp_path / "out" / "cache.npz") == 6

    restored = load_crops(tmp_path / "out" / "cache.npz", 64)
    assert restored.shape == (6, 3, 64, 64)
    error = np.abs(restored.permute(0, 2, 3, 1).numpy().astype(int) - crops.astype(int))
    assert error.mean() < 1.5
    with np.load(tmp_path / "out" / "cache.npz") as data:
        assert list(data["names"]) == list(names)
    with np.load(tmp_path / "pack.npz") as data:
        assert int(data["quality"]) == 95
    assert not list((tmp_path / "out").glob(".*tmp*"))


def test_pack_is_smaller_than_the_cache(tmp_path: Path) -> None:
    np.savez(tmp_path / "cache.npz", images=smooth_crops(20, 64))
    pack_crops(tmp_path / "cache.npz", tmp_path / "pack.npz")
    assert (tmp_path / "pack.npz").stat().st_size < (tmp_path / "cache.npz").stat().st_size / 3


def test_bad_inputs_name_the_file(tmp_path: Path) -> None:
    np.savez(tmp_path / "cache.npz", images=smooth_crops(2, 64))
    with pytest.raises(InputError, match="no such file"):
        pack_crops(tmp_path / "missing.npz", tmp_path / "pack.npz")
    with pytest.raises(InputError, match="quality"):
        pack_crops(tmp_path / "cache.npz", tmp_path / "pack.npz", quality=0)
    with pytest.raises(InputError, match="not a crop pack"):
        unpack_crops(tmp_path / "cache.npz", tmp_path / "out.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="junk.npz"):
        unpack_crops(tmp_path / "junk.npz", tmp_path / "out.npz")
    assert not (tmp_path / "out.npz").exists()
