"""Acceptance figures of a reversible backend: anonymity, right-key restore, wrong-key restore, key diversity.

The images go through the backend's public API (uint8 crops in and out), so the figures include rounding;
any `Recognizer` (faces.recognize) scores them, the independent one included. Keys are derived from a seed
(32 bytes each), so a run is reproducible and never touches a vault.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

import numpy as np

from ifadit.backends.base import Backend
from ifadit.faces.distance import paired_distances
from ifadit.faces.recognize import Recognizer
from ifadit.models.ifadit.flow import flip_bit


@dataclass(frozen=True)
class ReversibleImages:
    """The crops an evaluation scores, all [N,S,S,3] uint8. The wrong-key rows hold one array per wrong key:
    one key pair is a noisy estimate, so `score` averages over all of them."""

    original: np.ndarray
    anonymized: np.ndarray  # under the evaluated key
    anonymized_other: tuple[np.ndarray, ...]  # under each other key
    restored: np.ndarray  # anonymized, restored with the evaluated key
    restored_random: tuple[np.ndarray, ...]  # restored with each unrelated key
    restored_near: tuple[np.ndarray, ...]  # restored with each one-bit-off copy of the evaluated key


@dataclass(frozen=True)
class ReversibleReport:
    """Fractions of faces (0..1) for one recognizer; wrong-key fractions are means over the wrong keys."""

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
    return k1, k2, k3, flip_bit(k1, 0)


def reversible_images(backend: Backend, crops: np.ndarray, seed: int = 0) -> ReversibleImages:
    """Run `crops` through anonymize and restore with the right, an unrelated and a one-bit-off key."""
    k1, k2, k_random, k_near = evaluation_keys(seed)
    anonymized = backend.anonymize_crops(crops, k1)
    return ReversibleImages(
        original=crops,
        anonymized=anonymized,
        anonymized_other=(backend.anonymize_crops(crops, k2),),
        restored=backend.restore_crops(anonymized, k1),
        restored_random=(backend.restore_crops(anonymized, k_random),),
        restored_near=(backend.restore_crops(anonymized, k_near),),
    )


Embeddings = dict[str, list[np.ndarray]]  # ReversibleImages field -> one [N,D] array per crop array


def embed_images(
    images: ReversibleImages, recognizer: Recognizer, known: Mapping[str, np.ndarray] | None = None
) -> Embeddings:
    """`recognizer`'s embeddings of every crop array of `images`, by field; `known` holds embeddings of
    single-array fields the caller computed already (e.g. {"original": ...})."""
    embedded: Embeddings = {name: [value] for name, value in (known or {}).items()}
    for f in fields(images):
        if f.name in embedded:
            continue
        value = getattr(images, f.name)
        arrays = value if isinstance(value, tuple) else (value,)
        embedded[f.name] = [recognizer.embed(a) for a in arrays]
    return embedded


def score(
    images: ReversibleImages, recognizer: Recognizer, embedded: Embeddings | None = None
) -> ReversibleReport:
    """The acceptance fractions of `images` under `recognizer`'s metric and threshold (`embedded`: the
    embeddings of `images` when the caller has them already)."""
    emb = embedded if embedded is not None else embed_images(images, recognizer)

    def match(a: str, b: str) -> float:
        """Mean verification rate of every array of field `a` against the single array of field `b`."""
        (target,) = emb[b]
        rates = [
            np.mean(np.asarray(paired_distances(e, target, recognizer.metric)) < recognizer.threshold)
            for e in emb[a]
        ]
        return float(np.mean(rates))

    return ReversibleReport(
        recognizer=recognizer.name,
        faces=len(images.original),
        anonymized_match=match("anonymized", "original"),
        restored_match=match("restored", "original"),
        random_key_match=match("restored_random", "original"),
        near_key_match=match("restored_near", "original"),
        keys_differ=1.0 - match("anonymized_other", "anonymized"),
    )
