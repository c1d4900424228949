"""Attacks on a reversible backend (docs/security.md threat model: the attacker has the model, not the key).

(a) key search: restore under N random keys and keep the best; (b) learned inversion: a small network trained
on (anonymized, original) pairs made under known keys, applied to faces anonymized under an unseen key;
(c) averaging: restore under N random keys and average the pixels. Each attack is scored by how often its
output verifies as the original face; a secure backend keeps that at the level of unrelated people.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ifadit.faces.distance import Metric, paired_distances
from ifadit.faces.recognize import crops_to_img


def key_search_rate(
    original: np.ndarray, candidates: Sequence[np.ndarray], metric: Metric, threshold: float
) -> float:
    """Fraction of faces for which at least one candidate restore verifies as the original.

    `original` [N,D] embeddings; `candidates[k]` [N,D] embeddings of the faces restored under key k.
    """
    if not candidates:
        raise ValueError("key search needs at least one candidate key")
    hits = np.stack([np.asarray(paired_distances(original, c, metric)) < threshold for c in candidates])
    return float(hits.any(0).mean())


def average_crops(restores: Sequence[np.ndarray]) -> np.ndarray:
    """Pixel-wise mean of several restores of the same crops (each uint8 [N,S,S,3]), rounded to uint8."""
    if not restores:
        raise ValueError("the averaging attack needs at least one restore")
    return np.rint(np.mean(np.stack(restores).astype(np.float64), axis=0)).astype(np.uint8)


class InversionNet(nn.Module):
    """Small residual CNN: anonymized `img` [N,3,S,S] in [-1, 1] -> a guess of the original."""

    def __init__(self, width: int = 32, depth: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, width, 3, padding=1), nn.ReLU()]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU()]
        layers.append(nn.Conv2d(width, 3, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return (img + self.body(img)).clamp(-1.0, 1.0)


def train_inversion(
    anonymized: np.ndarray, original: np.ndarray, steps: int = 300, batch: int = 16, seed: int = 0
) -> InversionNet:
    """Fit `InversionNet` (L1, Adam 1e-3) on paired uint8 crops [N,S,S,3]; deterministic for `seed`."""
    if anonymized.shape != original.shape or len(anonymized) == 0:
        raise ValueError(f"need paired crops of one shape, got {anonymized.shape} and {original.shape}")
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = InversionNet()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    source, target = crops_to_img(anonymized), crops_to_img(original)
    for _ in range(steps):
        index = torch.randint(len(source), (min(batch, len(source)),), generator=generator)
        loss = (net(source[index]) - target[index]).abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return net.eval()


def invert(net: InversionNet, crops: np.ndarray) -> np.ndarray:
    """The network's guess of the originals of anonymized uint8 crops, as uint8 [N,S,S,3]."""
    with torch.no_grad():
        img = net(crops_to_img(crops))
    return ((img + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
