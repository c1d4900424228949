"""Recovery quality of a reversible backend on canonical crops: PSNR, SSIM, bit-exact rate, identity cosine.

Computed on the face crops themselves (the region the backend changed), never on pasted-back frames, so the
untouched background cannot inflate the figures.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from ifadit.faces.distance import paired_distances


@dataclass(frozen=True)
class RecoveryReport:
    """Means over faces of right-key restores against the original crops."""

    faces: int
    psnr: float  # dB (capped at 100 for identical crops)
    ssim: float  # -1..1 (1 = identical)
    exact: float  # fraction restored bit-exactly

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


PSNR_CAP = 100.0  # dB reported for identical crops (PSNR is infinite there)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 crops, `PSNR_CAP` when identical."""
    if np.array_equal(a, b):
        return PSNR_CAP
    return float(min(peak_signal_noise_ratio(a, b, data_range=255), PSNR_CAP))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two uint8 RGB crops (channel-averaged, 7 px window, shrunk for crops under 7 px)."""
    window = min(7, a.shape[0] - (1 - a.shape[0] % 2))
    return float(structural_similarity(a, b, channel_axis=-1, data_range=255, win_size=window))


def recovery(original: np.ndarray, restored: np.ndarray) -> RecoveryReport:
    """Crop-wise PSNR, SSIM and exactness of `restored` against `original` (uint8 [N,S,S,3])."""
    if original.shape != restored.shape:
        raise ValueError(f"original {original.shape} and restored {restored.shape} crops differ in shape")
    return RecoveryReport(
        faces=len(original),
        psnr=float(np.mean([psnr(a, b) for a, b in zip(original, restored, strict=True)])),
        ssim=float(np.mean([ssim(a, b) for a, b in zip(original, restored, strict=True)])),
        exact=float(np.mean([np.array_equal(a, b) for a, b in zip(original, restored, strict=True)])),
    )


def identity_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean cosine similarity of paired embeddings [N,D]."""
    return float(np.mean(1.0 - np.asarray(paired_distances(a, b, "cosine"))))
