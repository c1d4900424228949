"""Probe (issue 28): keep the photo's low-frequency colour and lighting under a pasted surrogate.

Today's paste-back fits the surrogate's Lab mean and spread to the photo's over the replaced region
(`blend._match_colour`, "global"). The variants here also replace the surrogate's low-pass Lab field by the
photo's (a Gaussian of `sigma` times the region's width, normalised over the region so that background does
not bleed in): "ab" for chroma only, "Lab" for lightness too. The photo's low frequencies carry its lighting
and its skin tone, and also some of the face's shape, so every variant reports its anonymity.

For each evaluation key set, the shipped model's surrogates of a re-ID set's crops are pasted into their crops
(`ifadit.eval.colour.published`) under each variant; then CIEDE2000 to the original over the replaced skin,
the pasted surrogates verified as the original (faceres, dlib), and the model restore from them
(`restore_crops` with `pasted_at`, whose refinements paste the same way): faceres, dlib, PSNR, SSIM.

Usage: .venv/bin/python scripts/lighting_probe.py --data ../shared/data/reid/dlib-johns --keys 8
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from ifadit.backends.ifadit import IfaditBackend
from ifadit.eval.colour import mean_delta_e, published
from ifadit.eval.reid import load_reid_set
from ifadit.eval.reversible import evaluation_keys
from ifadit.faces import blend
from ifadit.faces.blend import REVERSIBLE_MASK_SCALE, crop_mask
from ifadit.faces.registry import get_recognizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inversion_probe import Scorer  # noqa: E402  (a sibling script)

Matcher = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
GLOBAL: Matcher = blend._match_colour


def lowpass_matcher(channels: tuple[int, ...], sigma: float) -> Matcher:
    """Global match, then the photo's low-pass Lab field in `channels` instead of the surrogate's."""

    def match(new: np.ndarray, old: np.ndarray, region: np.ndarray) -> np.ndarray:
        new = GLOBAL(new, old, region)
        new_lab = cv2.cvtColor(new / 255.0, cv2.COLOR_RGB2LAB)
        old_lab = cv2.cvtColor(old / 255.0, cv2.COLOR_RGB2LAB)
        weights = region.astype(np.float32)
        width = float(np.sqrt(weights.sum()))
        blur = sigma * width

        def smooth(values: np.ndarray) -> np.ndarray:
            num = cv2.GaussianBlur(values * weights[..., None], (0, 0), blur)
            den = cv2.GaussianBlur(weights, (0, 0), blur)[..., None]
            return num / np.maximum(den, 1e-6)

        shift = smooth(old_lab) - smooth(new_lab)
        out = new_lab.copy()
        for channel in channels:
            out[..., channel] += shift[..., channel]
        return np.clip(cv2.cvtColor(out.astype(np.float32), cv2.COLOR_LAB2RGB) * 255.0, 0.0, 255.0)

    return match


VARIANTS: dict[str, Matcher] = {
    "global": GLOBAL,
    "ab-0.15": lowpass_matcher((1, 2), 0.15),
    "Lab-0.15": lowpass_matcher((0, 1, 2), 0.15),
    "Lab-0.30": lowpass_matcher((0, 1, 2), 0.30),
}


def measure(
    backend: IfaditBackend,
    crops: np.ndarray,
    score: Scorer,
    weights: np.ndarray,
    key: bytes,
    renders: np.ndarray,
) -> dict[str, float]:
    pasted = published(crops, renders, REVERSIBLE_MASK_SCALE, True)
    restored = backend.restore_crops(pasted, key, pasted_at=REVERSIBLE_MASK_SCALE)
    anonymity, back = score.matches(pasted), score(restored)
    return {
        "delta_e": mean_delta_e(crops, pasted, weights),
        "anonymized_faceres": anonymity["faceres"],
        "anonymized_dlib": anonymity["dlib"],
        "restored_faceres": back["faceres"],
        "restored_dlib": back["dlib"],
        "restored_psnr": back["psnr"],
        "restored_ssim": back["ssim"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/reid/dlib-johns"))
    parser.add_argument("--keys", type=int, default=8, help="evaluation key sets 0..N-1")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    backend = IfaditBackend()
    crops = load_reid_set(args.data, size=backend.crop_size).crops
    score = Scorer(crops, [get_recognizer("faceres"), get_recognizer("dlib")])
    weights = crop_mask(crops.shape[1], REVERSIBLE_MASK_SCALE)
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    for key_set in range(args.keys):
        key = evaluation_keys(key_set)[0]
        renders = backend.anonymize_crops(crops, key)
        for name, matcher in VARIANTS.items():
            blend._match_colour = (
                matcher  # the probe's switch; paste-back and the restore's refinements use it
            )
            rows[name].append(measure(backend, crops, score, weights, key, renders))
            print(
                f"key set {key_set} {name:<8} " + " ".join(f"{k} {v:.3f}" for k, v in rows[name][-1].items())
            )
    print(f"\nmeans over {args.keys} key sets, {len(crops)} crops of {args.data.name}:")
    for name, measured in rows.items():
        means = {k: float(np.mean([r[k] for r in measured])) for k in measured[0]}
        print(f"{name:<8} " + " ".join(f"{k} {v:.3f}" for k, v in means.items()))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
