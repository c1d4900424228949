"""Probe (issue 28): a face mask whose lower half stops above the render's dark bottom rows.

The 64 px renders end in dark rows (neck shadow and collars of the training crops); at the reversible ellipse
(1.3) the mask reaches past the crop's bottom edge, so those rows show as a dark band under every surrogate's
chin. Here the ellipse's lower semi-axis is scaled by `low` (1.0: today's mask; 0.8 ends its full-opacity
part just below the chin and fades out by the crop's edge). The photo keeps its own neck; the surrogate
still covers the chin. Measured as `scripts/lighting_probe.py` measured (commit 7f97063): CIEDE2000 over the
replaced skin, the pasted surrogates' anonymity (faceres, dlib) and the model restore from them.

Usage: .venv/bin/python scripts/chin_probe.py --data ../shared/data/reid/dlib-johns --keys 8
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ifadit.backends.ifadit import IfaditBackend
from ifadit.eval.colour import mean_delta_e, published
from ifadit.eval.reid import load_reid_set
from ifadit.eval.reversible import evaluation_keys
from ifadit.faces import blend
from ifadit.faces.align import AlignedFace
from ifadit.faces.blend import REVERSIBLE_MASK_SCALE, crop_mask
from ifadit.faces.registry import get_recognizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inversion_probe import Scorer  # noqa: E402  (a sibling script)

MaskInBox = Callable[[AlignedFace, tuple[int, int, int, int], float, float], np.ndarray]
LOWS = (1.0, 0.8, 0.65)


def mask_with_lower_axis(low: float) -> MaskInBox:
    """`blend._mask_in_box` with the ellipse's lower semi-axis scaled by `low`."""

    def mask_in_box(
        aligned: AlignedFace, box: tuple[int, int, int, int], mask_scale: float, feather: float
    ) -> np.ndarray:
        x0, y0, x1, y1 = box
        xs, ys = np.meshgrid(np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64))
        crop_xy = aligned.to_crop(np.stack([xs.ravel(), ys.ravel()], axis=1)).reshape(*xs.shape, 2)
        center, axes = blend._crop_ellipse(aligned, mask_scale)
        offset = crop_xy - center
        scale_y = np.where(offset[..., 1] > 0, axes[1] * low, axes[1])
        radius = np.sqrt((offset[..., 0] / axes[0]) ** 2 + (offset[..., 1] / scale_y) ** 2)
        ramp = np.clip((1.0 - radius) / max(feather, 1e-6), 0.0, 1.0)
        alpha = ramp * ramp * (3.0 - 2.0 * ramp)
        edge = np.minimum(crop_xy + 0.5, aligned.size - 0.5 - crop_xy).min(axis=-1)
        window = np.clip(edge / max(0.05 * aligned.size, 1.0), 0.0, 1.0)
        return (alpha * window).astype(np.float32)

    return mask_in_box


def measure(
    backend: IfaditBackend,
    crops: np.ndarray,
    score: Scorer,
    weights: np.ndarray,
    key: bytes,
    renders: np.ndarray,
) -> dict[str, float]:
    """The surrogates pasted into their crops: colour, anonymity, and the model restore from them."""
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
    args = parser.parse_args()
    torch.set_num_threads(1)
    backend = IfaditBackend()
    crops = load_reid_set(args.data, size=backend.crop_size).crops
    score = Scorer(crops, [get_recognizer("faceres"), get_recognizer("dlib")])
    rows: dict[float, list[dict[str, float]]] = {low: [] for low in LOWS}
    for key_set in range(args.keys):
        key = evaluation_keys(key_set)[0]
        renders = backend.anonymize_crops(crops, key)
        for low in LOWS:
            blend._mask_in_box = mask_with_lower_axis(
                low
            )  # the probe's switch: paste-back and restore use it
            weights = crop_mask(crops.shape[1], REVERSIBLE_MASK_SCALE)
            rows[low].append(measure(backend, crops, score, weights, key, renders))
            print(
                f"key set {key_set} low {low:.2f} "
                + " ".join(f"{k} {v:.3f}" for k, v in rows[low][-1].items())
            )
    print(f"\nmeans over {args.keys} key sets, {len(crops)} crops of {args.data.name}:")
    for low, measured in rows.items():
        means = {k: float(np.mean([r[k] for r in measured])) for k in measured[0]}
        print(f"low {low:.2f} " + " ".join(f"{k} {v:.3f}" for k, v in means.items()))


if __name__ == "__main__":
    main()
