"""Probe: replace a trained model's learned flow by a keyed rotation of the whitened identity code, untrained.

    python scripts/keyed_rotation_probe.py --model pretrained/ifadit-64 --seed 4 --key-sets 8

The surrogate code is mu + W^-1 R(k) W (z - mu): W whitens the standardised identity codes of `--fit-faces`
celeba-crops/train faces (PCA), R(k) is a random orthogonal matrix drawn from the flow condition c(k) (a
seed hashed from its bytes: enough for a probe, not a key schedule). A rotation is an isometry of the whitened
space: every key sends a face to a fresh point of the real-code distribution, a wrong key's inverse is a
random rotation of the original, and the re-read error of a rendered surrogate comes back unamplified. It
answers one question before any training: how far the encoder, mapper, generator and correction of a model
already go towards issue 6's targets when the key part is exact. Prints the eval_ifadit.py table (dlib).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import torch
from torch import nn

from ifadit.backends.ifadit import IfaditBackend
from ifadit.eval.reid import load_reid_set
from ifadit.eval.reversible import reversible_images, score
from ifadit.faces.recognize import get_recognizer
from ifadit.models.encoders import ReadCorrection
from ifadit.training.data import load_crops, to_model_range
from scripts.eval_ifadit import SETS, mean_report


class KeyedRotation(nn.Module):
    """z -> mu + W^-1 R(c) W (z - mu) and back, R(c) orthogonal and seeded by the condition's bytes."""

    def __init__(self, codes: torch.Tensor, whiten: bool = True, subspace: int = 0) -> None:
        super().__init__()
        self.subspace = subspace  # > 0: rotate only the top `subspace` principal directions
        mu = codes.mean(0)
        cov = torch.cov((codes - mu).T.double())
        values, vectors = torch.linalg.eigh(cov)
        values = values.clamp_min(1e-6) if whiten else torch.ones_like(values)
        self.mu = mu
        self.whiten = (vectors / values.sqrt()).T.float()  # W
        self.colour = (vectors * values.sqrt()).float()  # W^-1

    def rotation(self, c: torch.Tensor) -> torch.Tensor:
        seed = int.from_bytes(hashlib.sha256(c.detach().cpu().numpy().tobytes()).digest()[:8], "little")
        gen = torch.Generator().manual_seed(seed)
        dim = self.mu.shape[0]
        m = self.subspace or dim
        q, r = torch.linalg.qr(torch.randn(m, m, generator=gen, dtype=torch.float64))
        rot = torch.eye(dim, dtype=torch.float64)
        rot[dim - m :, dim - m :] = q * torch.sign(torch.diagonal(r))  # Haar; eigh sorts variances ascending
        return rot.float()

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        rot = self.rotation(c)
        return self.mu + ((z - self.mu) @ self.whiten.T @ rot.T @ self.colour.T)

    def inverse(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        rot = self.rotation(c)
        return self.mu + ((z - self.mu) @ self.whiten.T @ rot @ self.colour.T)


def fit_correction(model: nn.Module, faces: torch.Tensor, rotation: KeyedRotation) -> nn.Module:
    """A fresh ReadCorrection fitted to (re-read code of the rendered surrogate -> surrogate code) pairs of
    `faces` under one random condition each, by Adam on the whitened squared error (the error a rotation
    carries back unchanged); prints the error before and after on the last 10% of pairs (held out)."""
    torch.manual_seed(0)
    read, target = [], []
    with torch.no_grad():
        for batch in faces.split(64):
            z_id, z_attr = model.encode(batch)
            surrogate = torch.cat([rotation(z[None], torch.randn(model.config.flow.cond_dim)) for z in z_id])
            read.append(model.standardise(model.descriptor(model.render(surrogate, z_attr).clamp(-1, 1))))
            target.append(surrogate)
    x, y = torch.cat(read), torch.cat(target)
    split = int(0.9 * len(x))
    correction = ReadCorrection(x.shape[1], model.config.correction_hidden)
    optimizer = torch.optim.Adam(correction.parameters(), lr=1e-3)

    def error(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return ((a - b) @ rotation.whiten.T).pow(2).sum(1).mean()

    for _ in range(3000):
        pick = torch.randint(0, split, (256,))
        loss = error(correction(x[pick]), y[pick])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        print(
            f"correction fit on {split} pairs: held-out whitened error {error(x[split:], y[split:]):.1f} -> "
            f"{error(correction(x[split:]), y[split:]):.1f}"
        )
    return correction.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("pretrained/ifadit-64"))
    parser.add_argument("--data", type=Path, default=Path("../shared/data/reid"))
    parser.add_argument("--train-cache", type=Path, default=Path("cache/celeba-train-64.npz"))
    parser.add_argument("--fit-faces", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--key-sets", type=int, default=8)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--no-whiten", action="store_true", help="rotate the standardised codes as they are")
    parser.add_argument("--no-correction", action="store_true", help="invert the raw re-read code")
    parser.add_argument("--subspace", type=int, default=0, help="rotate only the top M principal directions")
    parser.add_argument(
        "--fit-correction",
        type=int,
        default=0,
        metavar="N",
        help="fit a fresh re-read correction for the rotation on N rendered train faces (0: keep the model's)",
    )
    args = parser.parse_args()
    backend = IfaditBackend(model_dir=args.model)
    model = backend.model
    faces = to_model_range(
        load_crops(args.train_cache, model.config.generator.img_resolution)[: args.fit_faces]
    )
    with torch.no_grad():
        codes = torch.cat([model.encode(batch)[0] for batch in faces.split(64)])
    model.flow = KeyedRotation(codes, whiten=not args.no_whiten, subspace=args.subspace)
    if args.no_correction:
        model.correction = nn.Identity()
    if args.fit_correction:
        model.correction = fit_correction(model, faces[: args.fit_correction], model.flow)
    dlib = get_recognizer("dlib")
    results = {}
    for name in SETS:
        reid = load_reid_set(args.data / name, size=backend.crop_size)
        runs = [reversible_images(backend, reid.crops, seed=args.seed + i) for i in range(args.key_sets)]
        row = mean_report([score(images, dlib).to_dict() for images in runs])
        results[name] = row
        print(
            f"{name}: anonymized {row['anonymized_match']:.3f} restored {row['restored_match']:.3f} "
            f"random {row['random_key_match']:.3f} near {row['near_key_match']:.3f} "
            f"keys differ {row['keys_differ']:.3f}"
        )
    if args.json is not None:
        args.json.write_text(
            json.dumps({"model": str(args.model), "seed": args.seed, "sets": results}, indent=2)
        )


if __name__ == "__main__":
    main()
