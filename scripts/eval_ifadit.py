"""Measure a trained iFADIT model against issue 6's acceptance figures on the shared re-identification sets.

For every face of `reid/deepface` and `reid/dlib-johns` (never used in training), aligned at the model's crop
size: anonymize under key 1 and key 2, restore with key 1, an unrelated key and key 1 one bit off; score with
dlib (C++ reference, threshold 0.6) and faceres (independent, never used in training). Prints one table per
set; `--json` writes the figures. faceres needs `ifadit models fetch-faceres` first.

Example:
    python scripts/eval_ifadit.py --data ../shared/data/reid --model pretrained/ifadit-64 --key-sets 4 \\
        --json runs/ifadit-eval.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ifadit.backends.ifadit import IfaditBackend
from ifadit.eval.reid import load_reid_set
from ifadit.eval.reversible import reversible_images, score
from ifadit.faces.registry import get_recognizer

SETS = ("deepface", "dlib-johns")
WANT = "want: anonymized <= 0.05, restored >= 0.90, random/near key <= 0.05, keys differ >= 0.95"


def mean_report(rows: list[dict[str, float | int | str]]) -> dict[str, float | int | str]:
    """The per-key-set reports of one recognizer averaged field by field (fractions), with their spread."""
    fractions = [k for k, v in rows[0].items() if isinstance(v, float)]
    mean: dict[str, float | int | str] = {k: v for k, v in rows[0].items() if k not in fractions}
    for key in fractions:
        values = [float(row[key]) for row in rows]
        mean[key] = sum(values) / len(values)
        mean[f"{key}_range"] = f"{min(values):.3f}-{max(values):.3f}"
    return mean


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/reid"))
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped one)")
    parser.add_argument("--recognizers", default="dlib,faceres")
    parser.add_argument("--seed", type=int, default=0, help="seed of the (first) evaluation key set")
    parser.add_argument(
        "--key-sets",
        type=int,
        default=1,
        help="average over this many key sets (seeds seed..seed+N-1): one key pair is a noisy estimate",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    backend = IfaditBackend(model_dir=args.model)
    recognizers = [get_recognizer(name) for name in args.recognizers.split(",")]
    results: dict[str, list[dict[str, float | int | str]]] = {}
    print(f"model {backend.model_id}; {WANT}")
    for name in SETS:
        faces = load_reid_set(args.data / name, size=backend.crop_size)
        runs = [reversible_images(backend, faces.crops, seed=args.seed + i) for i in range(args.key_sets)]
        results[name] = [mean_report([score(images, r).to_dict() for images in runs]) for r in recognizers]
        print(f"\n{name} ({len(faces.crops)} faces)")
        print(f"  {'recognizer':<12} anonymized restored random-key near-key keys-differ")
        for row in results[name]:
            print(
                f"  {row['recognizer']:<12} {row['anonymized_match']:10.3f} {row['restored_match']:8.3f} "
                f"{row['random_key_match']:10.3f} {row['near_key_match']:8.3f} {row['keys_differ']:11.3f}"
            )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        summary = {
            "model_id": backend.model_id,
            "key_sets": args.key_sets,
            "seed": args.seed,
            "sets": results,
        }
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
