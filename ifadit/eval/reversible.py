"""Acceptance figures of a reversible backend: anonymity, right-key restore, wrong-key restore, key diversity.

The images go through the backend's public API (uint8 crops in and out), so the figures include rounding;
any `Recognizer` (faces.recognize) scores them, the independent one included. Keys are derived from a seed
(32 bytes each), so a run is reproducible and never touches a vault.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, fields

import numpy as np

from ifadit.backends.base import Backend
from ifadit.eval.metrics import paired_distances
from ifadit.faces.recognize import Recognizer


@dataclass(frozen=True)
class ReversibleImages:
    """The crops an evaluation scores, all [N,S,S,3] uint8."""

    original: np.ndarray
    anonymized: np.ndarray  # under key 1
    anonymized_other: np.ndarray  # under key 2
    restored: np.ndarray  # anonymized, restored with key 1
    restored_random: np.ndarray  # restored with an unrelated key
    restored_near: np.ndarray  # restored with key 1 one bit off


@dataclass(frozen=True)
class ReversibleReport:
    """Fractions of faces (0..1) for one recognizer."""

    recognizer: str
    faces: int
    anonymized_match: float  # anonymized verifies as the original (want <= 0.05)
    restored_match: float  # right-key restore verifies as the original (want >= 0.90)
    random_key_match: float  # unrelated-key restore verifies as the original (want <= 0.05)
    near_key_match: float  # one-bit-off-key restore verifies as the original (want <= 0.05)
    keys_differ: float  # surrogates under two keys do not verify as each other (want >= 0.95)

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def evaluation_keys(seed: int) -> tuple[bytes, bytes, bytes, bytes]:
    """(key 1, key 2, unrelated key, key 1 with bit 0 flipped) for `seed`."""
    k1, k2, k3 = (hashlib.sha256(f"ifadit evaluation key {seed}/{i}".encode()).digest() for i in range(3))
    return k1, k2, k3, bytes([k1[0] ^ 1]) + k1[1:]


def reversible_images(backend: Backend, crops: np.ndarray, seed: int = 0) -> ReversibleImages:
    """Run `crops` through anonymize and restore with the right, an unrelated and a one-bit-off key."""
    k1, k2, k_random, k_near = evaluation_keys(seed)
    anonymized = backend.anonymize_crops(crops, k1)
    return ReversibleImages(
        original=crops,
        anonymized=anonymized,
        anonymized_other=backend.anonymize_crops(crops, k2),
        restored=backend.restore_crops(anonymized, k1),
        restored_random=backend.restore_crops(anonymized, k_random),
        restored_near=backend.restore_crops(anonymized, k_near),
    )


def score(images: ReversibleImages, recognizer: Recognizer) -> ReversibleReport:
    """The acceptance fractions of `images` under `recognizer`'s metric and threshold."""
    emb = {f.name: recognizer.embed(getattr(images, f.name)) for f in fields(images)}

    def match(a: str, b: str) -> float:
        distances = np.asarray(paired_distances(emb[a], emb[b], recognizer.metric))
        return float(np.mean(distances < recognizer.threshold))

    return ReversibleReport(
        recognizer=recognizer.name,
        faces=len(images.original),
        anonymized_match=match("anonymized", "original"),
        restored_match=match("restored", "original"),
        random_key_match=match("restored_random", "original"),
        near_key_match=match("restored_near", "original"),
        keys_differ=1.0 - match("anonymized", "anonymized_other"),
    )
