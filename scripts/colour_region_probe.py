"""Probe (issue 28): colour-match pasted surrogates over the seam ring (shipped) or over the whole face.

For each evaluation key set, the shipped iFADIT model's surrogates of a re-ID set's crops are pasted into
their crops as paste-back pastes them (`ifadit.eval.colour.published`), once per matching region; then:
CIEDE2000 to the original over the replaced skin, the anonymity of the pasted surrogates (faceres and dlib
verify them as the original), and the model restore from the pasted surrogates (`restore_crops` with
`pasted_at`, whose refinements paste the same way): restored faceres/dlib, PSNR, SSIM.

Usage: .venv/bin/python scripts/colour_region_probe.py --data ../shared/data/reid/dlib-johns --keys 8
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

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

REGIONS = ("ring", "face")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/reid/dlib-johns"))
    parser.add_argument("--keys", type=int, default=8, help="evaluation key sets 0..N-1")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    backend = IfaditBackend()
    crops = load_reid_set(args.data, size=backend.crop_size, limit=args.limit).crops
    score = Scorer(crops, [get_recognizer("faceres"), get_recognizer("dlib")])
    weights = crop_mask(crops.shape[1], REVERSIBLE_MASK_SCALE)
    rows: dict[str, list[dict[str, float]]] = {region: [] for region in REGIONS}
    for key_set in range(args.keys):
        key = evaluation_keys(key_set)[0]
        renders = backend.anonymize_crops(crops, key)
        for region in REGIONS:
            blend.COLOUR_MATCH_REGION = region
            pasted = published(crops, renders, REVERSIBLE_MASK_SCALE, True)
            restored = backend.restore_crops(pasted, key, pasted_at=REVERSIBLE_MASK_SCALE)
            anonymity = score.matches(pasted)
            back = score(restored)
            rows[region].append({
                "delta_e": mean_delta_e(crops, pasted, weights),
                "anonymized_faceres": anonymity["faceres"], "anonymized_dlib": anonymity["dlib"],
                "restored_faceres": back["faceres"], "restored_dlib": back["dlib"],
                "restored_psnr": back["psnr"], "restored_ssim": back["ssim"],
            })  # fmt: skip
            print(
                f"key set {key_set} {region:<4} "
                + " ".join(f"{k} {v:.3f}" for k, v in rows[region][-1].items())
            )
    print(f"\nmeans over {args.keys} key sets, {len(crops)} crops of {args.data.name}:")
    for region in REGIONS:
        means = {k: float(np.mean([r[k] for r in rows[region]])) for k in rows[region][0]}
        print(f"{region:<4} " + " ".join(f"{k} {v:.3f}" for k, v in means.items()))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
