"""Fréchet distance of generator checkpoints to real test faces, on the independent recognizer's features.

For each `G_ema` checkpoint of a training run, draws N faces from fixed seeds, embeds them with
`faceres` (never used in training) and measures the Fréchet distance to the real `celeba-crops/test`
faces aligned to the same canonical crop. The real-vs-real distance (validation vs test) is printed
beside it as the floor. Each line also gives the identity diversity: the fraction of pairs of the first
DIVERSITY_SAMPLES faces that faceres does not verify as one person (real faces: near 1; a generator whose
samples look like one person: near 0, and then no key of the iFADIT flow can give surrogates that differ).
One JSON line per checkpoint goes to stdout; progress goes to stderr.

    python scripts/generator_frechet.py runs/gen64 --real ../shared/data/celeba-crops/test \
        --real-baseline ../shared/data/celeba-crops/validation --samples 1000 --every 3
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from ifadit.eval.diversity import pair_diversity
from ifadit.eval.metrics import frechet_distance
from ifadit.faces.recognize import FaceresRecognizer
from ifadit.models.stylegan2.checkpoint import load_generator
from ifadit.training.data import prepare_crops

CACHE = Path("cache")
DIVERSITY_SAMPLES = 200  # faces whose pairs (19,900) give the identity diversity
SAMPLE_SEED = 20261125  # latents of the generated faces: every trend in the model cards uses these


def real_features(folder: Path, resolution: int, recognizer: FaceresRecognizer) -> np.ndarray:
    crops = np.load(prepare_crops(folder, resolution, CACHE))["images"]
    return recognizer.embed(crops)


def generated_features(
    folder: Path, samples: int, recognizer: FaceresRecognizer, noise_mode: str, seed: int = SAMPLE_SEED
) -> tuple[np.ndarray, str]:
    generator, mid = load_generator(folder)
    z = torch.randn(samples, generator.z_dim, generator=torch.Generator().manual_seed(seed))
    crops = []
    with torch.no_grad():
        for start in range(0, samples, 32):
            img = generator(z[start : start + 32], noise_mode=noise_mode)
            crops.append(((img.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())
    return recognizer.embed(np.concatenate(crops)), mid


def diversity(features: np.ndarray, recognizer: FaceresRecognizer) -> float:
    return pair_diversity(features[:DIVERSITY_SAMPLES], recognizer.metric, recognizer.threshold)


def checkpoints(run: Path, every: int, after: int) -> list[Path]:
    found = [p for p in sorted((run / "checkpoints").glob("step-*/G_ema")) if int(p.parent.name[5:]) > after]
    if not found:
        raise SystemExit(f"error: {run}/checkpoints holds no step-*/G_ema folder")
    chosen = found[::every]
    return chosen if chosen[-1] == found[-1] else [*chosen, found[-1]]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path, help="training run folder (holds checkpoints/step-*/G_ema)")
    parser.add_argument(
        "--real", type=Path, required=True, help="real test faces (folder or .npz crop cache)"
    )
    parser.add_argument("--real-baseline", type=Path, help="second real set for the real-vs-real floor")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--noise-mode", default="none", choices=["none", "const", "random"])
    parser.add_argument(
        "--after", type=int, default=-1, help="only checkpoints after this step (resume a trend)"
    )
    parser.add_argument("--every", type=int, default=1, help="evaluate every k-th checkpoint (and the last)")
    parser.add_argument(
        "--sample-seed",
        type=int,
        default=SAMPLE_SEED,
        help="seed of the generated faces' latents; another seed shows the distance's sampling spread",
    )
    args = parser.parse_args()

    torch.manual_seed(0)
    recognizer = FaceresRecognizer()
    real = real_features(args.real, args.resolution, recognizer)
    if args.real_baseline is not None:
        floor = frechet_distance(real_features(args.real_baseline, args.resolution, recognizer), real)
        print(json.dumps({"real_vs_real": round(floor, 4), "real": len(real)}), flush=True)
    print(json.dumps({"real_identity_diversity": round(diversity(real, recognizer), 4)}), flush=True)
    for folder in checkpoints(args.run, args.every, args.after):
        state = (
            json.loads((folder.parent / "state.json").read_text())
            if (folder.parent / "state.json").is_file()
            else {}
        )
        features, mid = generated_features(
            folder, args.samples, recognizer, args.noise_mode, args.sample_seed
        )
        row = {
            "checkpoint": folder.parent.name,
            "step": state.get("step"),
            "kimg": state.get("kimg"),
            "model_id": mid,
            "sample_seed": args.sample_seed,
            "frechet_faceres": round(frechet_distance(features, real), 4),
            "identity_diversity": round(diversity(features, recognizer), 4),
        }
        print(json.dumps(row), flush=True)
        print(f"{folder.parent.name}: {row['frechet_faceres']}", file=sys.stderr)


if __name__ == "__main__":
    main()
