"""Experiment: would reading the surrogate back by inverting the generator beat one re-read + correction?

For every face of `reid/deepface` and `reid/dlib-johns` (never used in training), aligned at the model's crop
size, under evaluation key set 0: anonymize with key 1, then, starting from the restore path's own reading
(corrected re-read code, attribute code), take N Adam steps on both codes to minimise the pixel MSE between
their render and the anonymized crop, invert the flow with key 1, an unrelated key and key 1 one bit off,
and render as restore does. Prints, per N: the final MSE, seconds per face, the error of the surrogate code
(standardised units) and the share of restores dlib verifies as the original (threshold 0.6). The key plays
no part in the search, so it cannot tell keys apart.

Example:
    python scripts/restore_by_inversion.py --model pretrained/ifadit-64 --steps 0,20,50
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from ifadit.backends.ifadit import IfaditBackend
from ifadit.eval.reid import load_reid_set
from ifadit.eval.reversible import evaluation_keys
from ifadit.faces.distance import paired_distances
from ifadit.faces.recognize import crops_to_img
from ifadit.faces.registry import get_recognizer
from ifadit.models.ifadit.model import IfaditModel, plausible_code
from ifadit.training.runner import to_uint8

SETS = ("deepface", "dlib-johns")


def invert(
    model: IfaditModel, img: torch.Tensor, steps: int, lr: float
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(surrogate code, attribute code, final pixel MSE) after `steps` Adam steps from the re-read."""
    with torch.no_grad():
        z_sur, z_attr = model.reread(img)
    z_sur, z_attr = z_sur.clone().requires_grad_(True), z_attr.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([z_sur, z_attr], lr=lr)
    mse = float("nan")
    for _ in range(steps):
        loss = (model.render(z_sur, z_attr) - img).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        mse = float(loss.detach())
    return z_sur.detach(), z_attr.detach(), mse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/reid"))
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped one)")
    parser.add_argument("--steps", default="0,20,50", help="comma-separated numbers of inversion steps")
    parser.add_argument("--lr", type=float, default=0.05)
    args = parser.parse_args()
    backend = IfaditBackend(model_dir=args.model)
    model = backend.model.eval()
    dlib = get_recognizer("dlib")
    k1, _, k_random, k_near = evaluation_keys(0)
    keys = {"right": k1, "random": k_random, "near": k_near}
    print(f"model {backend.model_id}")
    for name in SETS:
        crops = load_reid_set(args.data / name, size=backend.crop_size).crops
        original = dlib.embed(crops)
        anonymized = crops_to_img(backend.anonymize_crops(crops, k1))
        with torch.no_grad():
            exact = model.surrogate(model.encode(crops_to_img(crops))[0], backend.condition(k1))
        for steps in (int(s) for s in args.steps.split(",")):
            start = time.monotonic()
            z_sur, z_attr, mse = invert(model, anonymized, steps, args.lr)
            seconds = (time.monotonic() - start) / len(crops)
            rates = {}
            with torch.no_grad():
                for label, key in keys.items():
                    z_id = plausible_code(model.flow.inverse(z_sur, backend.condition(key)))
                    restored = to_uint8(model.render(z_id, z_attr))
                    d = np.asarray(paired_distances(dlib.embed(restored), original, dlib.metric))
                    rates[label] = float(np.mean(d < dlib.threshold))
            error = float((z_sur - exact).norm(dim=1).mean())
            print(
                f"{name:<10} steps {steps:4d}  mse {mse:.4f}  s/face {seconds:.3f}  surrogate error {error:.2f}  "
                + "  ".join(f"{k} {v:.3f}" for k, v in rates.items())
            )


if __name__ == "__main__":
    main()
