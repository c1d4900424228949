"""Training images: the aligned-crop cache (`.npz` with `images` uint8 [N, S, S, 3] RGB and `names`)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from ifadit.errors import InputError


def load_crops(path: Path, resolution: int) -> torch.Tensor:
    """Aligned crops from an `.npz` cache as uint8 [N, 3, R, R]; InputError names the file and the fault."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            if "images" not in data:
                raise InputError(
                    f"{path}: no 'images' array",
                    hint="build the cache with `ifadit train generator --data DIR`",
                )
            images = data["images"]
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: not a readable .npz crop cache ({exc})") from None
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
        raise InputError(
            f"{path}: 'images' must be uint8 [N, S, S, 3], got {images.dtype} {list(images.shape)}"
        )
    if images.shape[1:3] != (resolution, resolution):
        raise InputError(
            f"{path}: crops are {images.shape[1]}x{images.shape[2]} px but the resolution is {resolution}",
            hint=f"use the {resolution} px cache or --resolution {images.shape[1]}",
        )
    if images.shape[0] == 0:
        raise InputError(f"{path}: the cache holds no images")
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


def to_model_range(batch: torch.Tensor) -> torch.Tensor:
    """uint8 NCHW -> float32 in [-1, 1]."""
    return batch.to(torch.float32) / 127.5 - 1
