"""Where does an iFADIT restore lose the identity? Descriptor distances (dlib units) along the restore path.

For every face of `reid/deepface` and `reid/dlib-johns` (never used in training), aligned at the model's crop
size, under evaluation key set 0: the phase-1 reconstruction, the re-read of the rendered surrogate, the
inverse flow with and without the re-read correction and with the exact surrogate code. Prints median,
90th percentile and the fraction under dlib's 0.6 for each; the table in docs/model.md comes from here.

Example:
    python scripts/restore_errors.py --model runs/flow64/model
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from ifadit.backends.ifadit import IfaditBackend
from ifadit.eval.reid import load_reid_set
from ifadit.eval.reversible import evaluation_keys
from ifadit.faces.identity import DLIB_THRESHOLD
from ifadit.models.flow import condition_from_key
from ifadit.training.data import to_model_range
from ifadit.training.phase2 import quantize

SETS = ("deepface", "dlib-johns")


def distance(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    return (a - b).norm(dim=1).numpy()


def restore_path_distances(backend: IfaditBackend, crops: np.ndarray, key: bytes) -> dict[str, np.ndarray]:
    """Per-face descriptor distances at each stage of anonymize -> restore under `key`."""
    m = backend.model
    c = condition_from_key(key, backend.model_id, m.config.flow.cond_dim)
    x = to_model_range(torch.from_numpy(crops).permute(0, 3, 1, 2))
    original = m.descriptor(x)
    z, z_attr = m.standardise(original), m.encoder(x)
    surrogate = m.surrogate(z, c)
    read = m.descriptor(quantize(m.render(surrogate, z_attr)))
    corrected = m.correction(m.standardise(read))
    return {
        "reconstruction, re-read vs original": distance(
            m.descriptor(quantize(m.render(z, z_attr))), original
        ),
        "anonymized, re-read vs original": distance(read, original),
        "surrogate, re-read vs its code": distance(read, m.destandardise(surrogate)),
        "F^-1(re-read) vs original": distance(
            m.destandardise(m.flow.inverse(m.standardise(read), c)), original
        ),
        "F^-1(correction(re-read)) vs original": distance(
            m.destandardise(m.flow.inverse(corrected, c)), original
        ),
        "F^-1(exact surrogate code) vs original": distance(
            m.destandardise(m.flow.inverse(surrogate, c)), original
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/reid"))
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped one)")
    args = parser.parse_args()
    backend = IfaditBackend(model_dir=args.model)
    key = evaluation_keys(0)[0]
    rows: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for name in SETS:
            crops = load_reid_set(args.data / name, size=backend.crop_size).crops
            for stage, values in restore_path_distances(backend, crops, key).items():
                rows.setdefault(stage, []).append(values)
    print(f"model {backend.model_id}; {', '.join(SETS)}; key set 0")
    for stage, parts in rows.items():
        values = np.concatenate(parts)
        print(
            f"{stage:40s} median {np.median(values):.3f}  p90 {np.percentile(values, 90):.3f}"
            f"  < {DLIB_THRESHOLD}: {np.mean(values < DLIB_THRESHOLD):.2f}"
        )


if __name__ == "__main__":
    main()
