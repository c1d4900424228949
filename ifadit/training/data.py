"""Training images: the aligned-crop cache (`.npz` with `images` uint8 [N, S, S, 3] RGB and `names`).

A folder of face photos becomes a cache once: each image goes through the project's face stage (dlib HOG
detector with upsample 1, 5-point landmarks, the canonical chip of `ifadit.faces.align` at the training
resolution); the highest-scoring face of each image is kept and images without a face are skipped.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ifadit.errors import InputError
from ifadit.media.image import read_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".pgm", ".ppm", ".tif", ".tiff")


def load_crops(path: Path, resolution: int | None) -> torch.Tensor:
    """Aligned crops from an `.npz` cache as uint8 [N, 3, R, R]; InputError names the file and the fault.

    `resolution` None takes the crops at the cache's own size.
    """
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
    if resolution is not None and images.shape[1:3] != (resolution, resolution):
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


def image_files(folder: Path) -> list[Path]:
    """Image files directly inside `folder`, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def build_crop_cache(
    folder: Path,
    out: Path,
    resolution: int,
    upsample: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Align every image of `folder` to a `resolution` px canonical crop and write the `.npz` cache `out`.

    Returns the number of crops kept. `progress(done, total)` is called after each image.
    """
    from ifadit.faces.align import align_face  # dlib loads here: training from a cache runs without it
    from ifadit.faces.registry import get_detector

    files = image_files(folder)
    if not files:
        raise InputError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    detector = get_detector("hog", upsample=upsample)
    crops, names = [], []
    for done, path in enumerate(files, start=1):
        image = read_image(path)
        faces = detector.detect(image)
        if faces:
            crops.append(align_face(image, faces[0].landmarks, size=resolution).crop)
            names.append(path.name)
        if progress is not None:
            progress(done, len(files))
    if not crops:
        raise InputError(f"{folder}: no face found in any of {len(files)} images")
    write_npz(out, images=np.stack(crops), names=np.array(names))
    return len(crops)


def write_npz(out: Path, **arrays: Any) -> None:
    """Write arrays to the `.npz` file `out` atomically (a temporary file renamed into place)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, out)


def folder_fingerprint(folder: Path) -> str:
    """Short hash of the image names, sizes and modification times of `folder`."""
    digest = hashlib.sha256()
    for path in image_files(folder):
        stat = path.stat()
        digest.update(f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:12]


def prepare_crops(
    data: Path,
    resolution: int,
    cache_dir: Path,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """An `.npz` crop cache for `data`: the file itself, or (for a folder) a cache in `cache_dir` built once."""
    data = Path(data)
    if data.is_file():
        return data
    if not data.is_dir():
        raise InputError(f"{data}: no such file or folder")
    cache = Path(cache_dir) / f"crops-{resolution}-{folder_fingerprint(data)}.npz"
    if not cache.is_file():
        build_crop_cache(data, cache, resolution, progress=progress)
    return cache
