"""Benchmark: the shipped iFADIT backend one face at a time (today's `map_crops`) vs the old batched path.

Crops: the 150 px dlib chips of ../shared/data/reid/dlib-johns (canonical geometry; resized to the model's
64 px inside `map_crops`). Both paths run `anonymize_crops` and then `restore_crops` of the surrogates under one
key, on one torch thread (the pinned count), in the same process:
  baseline  the old path: crops in batches of `--batch` through the model at once (output depended on the batch),
  per face  `map_crops` as shipped: each face alone, bit-exact whatever it is batched with.
Printed per step (anonymize, restore): ms per face for both (best of `--repeat`) and the ratio per face /
batched; then the largest pixel difference between the two paths' surrogates (a level or so: the per-face
path is the reference).

Usage: .venv/bin/python benchmarks/crop_model_bench.py [--repeat 3] [--batch 16] [--faces 55]
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from timing import best_of

from ifadit.backends import crop_model
from ifadit.backends.ifadit import IfaditBackend
from ifadit.media.image import read_image

SHARED = Path(os.environ.get("IFADIT_SHARED", Path(__file__).resolve().parents[2] / "shared"))
JOHNS = SHARED / "data" / "reid" / "dlib-johns"


def batched(
    crops: np.ndarray, size: int, batch: int, net: Callable[[torch.Tensor], torch.Tensor]
) -> np.ndarray:
    """The old `map_crops`: `net` over batches of `batch` crops (resized to `size` and back)."""
    side, out = crops.shape[1], []
    with torch.no_grad():
        for start in range(0, len(crops), batch):
            img = torch.from_numpy(crops[start : start + batch]).permute(0, 3, 1, 2).float() / 127.5 - 1
            img = F.interpolate(img, size=(size, size), mode="bilinear", antialias=True)
            img = F.interpolate(net(img), size=(side, side), mode="bilinear", antialias=False)
            out.append(crop_model.uint8_crops(img))
    return np.concatenate(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--faces", type=int, default=55)
    args = parser.parse_args()
    torch.set_num_threads(crop_model.MODEL_THREADS)
    crops = np.stack([read_image(path) for path in sorted(JOHNS.rglob("*.jpg"))[: args.faces]])
    backend, key = IfaditBackend(), bytes(range(32))
    model, c = backend.model, backend.condition(key)
    surrogates = backend.anonymize_crops(crops, key)

    runs = {
        "anonymize": (
            lambda: batched(crops, backend.crop_size, args.batch, lambda img: model.anonymize(img, c)),
            lambda: backend.anonymize_crops(crops, key),
        ),
        "restore": (
            lambda: batched(surrogates, backend.crop_size, args.batch, lambda img: model.restore(img, c)),
            lambda: backend.restore_crops(surrogates, key),
        ),
    }
    print(f"{len(crops)} faces, 1 thread, best of {args.repeat}; ms/face batched ({args.batch}) vs per face")
    for name, (old, new) in runs.items():
        old_s, new_s = best_of(args.repeat, old, warm_up=True), best_of(args.repeat, new, warm_up=True)
        per_face = 1000 / len(crops)
        print(f"  {name:9} {old_s * per_face:7.1f}  {new_s * per_face:7.1f}  ratio {new_s / old_s:.2f}")
    old_pixels = runs["anonymize"][0]()
    print(
        f"  largest pixel difference old vs new surrogates: {int(np.abs(old_pixels.astype(int) - surrogates).max())}"
    )


if __name__ == "__main__":
    main()
