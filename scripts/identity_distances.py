"""Descriptor distances (dlib units) along iFADIT's anonymize and restore paths: where identity is lost or kept.

For every face of `reid/deepface` and `reid/dlib-johns` (never used in training), aligned at the model's crop
size, under evaluation key set 0:
- restore path: the phase-1 reconstruction, the re-read of the rendered surrogate, the inverse flow with and
  without the re-read correction and with the exact surrogate code (against the original);
- key diversity: the surrogate codes of keys 1 and 2 and their renders (against each other), and the render
  of another person's real code with this face's attributes (against this face's reconstruction), which bounds
  how far apart any two identity codes can be drawn.
- key space: how many different surrogate identities one face gets over 32 keys (surrogate codes greedily
  grouped at dlib's 0.6; a flow whose keys act like independent random people gives close to 32).
Prints median, 90th percentile and the fraction under dlib's 0.6; the tables in docs/history/ifadit.md come from here.

Example:
    python scripts/identity_distances.py --model runs/flow64/model
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import torch

from ifadit.backends.ifadit import IfaditBackend
from ifadit.eval.reid import load_reid_set
from ifadit.eval.reversible import evaluation_keys
from ifadit.models.recognizer_names import DLIB_THRESHOLD
from ifadit.training.data import to_model_range
from ifadit.training.phase2 import quantize

SETS = ("deepface", "dlib-johns")


def distance(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    return (a - b).norm(dim=1).numpy()


def other_person(labels: list[str]) -> list[int]:
    """For each face, the index of the next face (cyclically) with another identity label."""
    n = len(labels)
    return [next(j % n for j in range(i + 1, i + n) if labels[j % n] != labels[i]) for i in range(n)]


def path_distances(
    backend: IfaditBackend,
    x: torch.Tensor,
    original: torch.Tensor,
    labels: list[str],
    key: bytes,
    key2: bytes,
) -> dict[str, np.ndarray]:
    """Per-face descriptor distances at each stage of anonymize -> restore under `key`, and between keys, for
    faces `x` (model range, NCHW) whose descriptors are `original`."""
    m = backend.model
    c, c2 = backend.condition(key), backend.condition(key2)
    z, z_attr = m.standardise(original), m.encoder(x)
    surrogate = m.surrogate(z, c)
    read = m.descriptor(quantize(m.render(surrogate, z_attr)))
    corrected = m.correction(m.standardise(read))
    surrogate2 = m.surrogate(z, c2)
    reconstruction = m.descriptor(quantize(m.render(z, z_attr)))
    other_code = z[other_person(labels)]  # another person's real code
    return {
        "reconstruction, re-read vs original": distance(reconstruction, original),
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
        "keys 1 and 2: surrogate codes": distance(m.destandardise(surrogate), m.destandardise(surrogate2)),
        "keys 1 and 2: rendered, re-read": distance(
            read, m.descriptor(quantize(m.render(surrogate2, z_attr)))
        ),
        "another person's code rendered vs recon.": distance(
            m.descriptor(quantize(m.render(other_code, z_attr))), reconstruction
        ),
    }


def distinct_surrogates(backend: IfaditBackend, original: torch.Tensor, keys: int = 32) -> np.ndarray:
    """Per face (descriptors `original`), the number of groups its surrogate codes under `keys` keys fall into,
    where a code joins the first group whose founder is within dlib's threshold (descriptor units)."""
    m = backend.model
    materials = [hashlib.sha256(f"ifadit key-space probe {i}".encode()).digest() for i in range(keys)]
    c = torch.stack([backend.condition(k) for k in materials])
    z = m.standardise(original)
    counts = []
    for code in z:
        surrogates = m.destandardise(m.flow(code.expand(keys, -1), c))
        apart = torch.cdist(surrogates, surrogates) >= DLIB_THRESHOLD
        founders: list[int] = []
        for j in range(keys):
            if all(apart[j, f] for f in founders):
                founders.append(j)
        counts.append(len(founders))
    return np.array(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/reid"))
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped one)")
    args = parser.parse_args()
    backend = IfaditBackend(model_dir=args.model)
    keys = evaluation_keys(0)[:2]
    rows: dict[str, list[np.ndarray]] = {}
    groups: list[np.ndarray] = []
    with torch.no_grad():
        for name in SETS:
            faces = load_reid_set(args.data / name, size=backend.crop_size)
            x = to_model_range(torch.from_numpy(faces.crops).permute(0, 3, 1, 2))
            original = backend.model.descriptor(x)
            for stage, values in path_distances(backend, x, original, faces.labels, *keys).items():
                rows.setdefault(stage, []).append(values)
            groups.append(distinct_surrogates(backend, original))
    print(f"model {backend.model_id}; {', '.join(SETS)}; key set 0")
    for stage, parts in rows.items():
        values = np.concatenate(parts)
        print(
            f"{stage:40s} median {np.median(values):.3f}  p90 {np.percentile(values, 90):.3f}"
            f"  < {DLIB_THRESHOLD}: {np.mean(values < DLIB_THRESHOLD):.2f}"
        )
    counts = np.concatenate(groups)
    print(
        f"distinct surrogate identities per face over 32 keys: median {np.median(counts):g}, "
        f"range {counts.min()}-{counts.max()}"
    )


if __name__ == "__main__":
    main()
