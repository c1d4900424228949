"""Anonymity metrics on identity embeddings: does an anonymized face still verify as, or re-identify, its person?

Pure functions: embeddings in, fractions out. A recognizer accepts a pair as one person when its distance is
below the recognizer's threshold (`ifadit.eval.metrics` distances).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ifadit.faces.distance import Metric, paired_distances, pairwise_distances


@dataclass(frozen=True)
class AnonymityReport:
    """One recognizer's view of one backend; rank-1 figures are None when no identity has two faces."""

    recognizer: str
    faces: int
    verification: float  # anonymized face verifies as its own original (0 = anonymous, 1 = unchanged)
    rank1: float | None  # anonymized face's nearest other original is its person
    rank1_original: float | None  # the same for the untouched originals (what the recognizer can do)
    chance: float | None  # rank-1 of a random guess

    def to_dict(self) -> dict[str, float | int | str | None]:
        return asdict(self)


def verification_rate(
    original: np.ndarray, anonymized: np.ndarray, metric: Metric, threshold: float
) -> float:
    """Fraction of rows i whose anonymized embedding is within `threshold` of original embedding i."""
    distances = np.asarray(paired_distances(original, anonymized, metric))
    return float(np.mean(distances < threshold))


def _queries(labels: np.ndarray) -> np.ndarray:
    """Faces whose identity has another face in the gallery."""
    return (labels[:, None] == labels[None, :]).sum(1) > 1


def gallery_rank1(
    queries: np.ndarray, gallery: np.ndarray, labels: Sequence[str], metric: Metric
) -> float | None:
    """Rank-1 identification of `queries[i]` against the gallery of all originals except its own source
    `gallery[i]` (leave-one-out: the attacker holds other photos of the person, not this one).

    Only faces whose identity has another original are queries; None when there are none.
    """
    labels_arr = np.asarray(labels)
    if not (len(queries) == len(gallery) == len(labels_arr)):
        raise ValueError(f"{len(queries)} queries, {len(gallery)} gallery faces and {len(labels_arr)} labels")
    asked = _queries(labels_arr)
    if not asked.any():
        return None
    distances = pairwise_distances(queries, gallery, metric)
    np.fill_diagonal(distances, np.inf)
    nearest = distances.argmin(1)
    return float((labels_arr[nearest] == labels_arr)[asked].mean())


def chance_rank1(labels: Sequence[str]) -> float | None:
    """Expected `gallery_rank1` of a guess drawn uniformly from the gallery less the query's own source:
    mean over queries of (other faces of its identity) / (gallery size - 1)."""
    labels_arr = np.asarray(labels)
    asked = _queries(labels_arr)
    if not asked.any():
        return None
    others = (labels_arr[:, None] == labels_arr[None, :]).sum(1) - 1
    return float((others[asked] / (len(labels_arr) - 1)).mean())


def anonymity(
    recognizer: str,
    original: np.ndarray,
    anonymized: np.ndarray,
    labels: Sequence[str],
    metric: Metric,
    threshold: float,
) -> AnonymityReport:
    """All anonymity figures of one recognizer from its embeddings of the originals and anonymized faces."""
    return AnonymityReport(
        recognizer=recognizer,
        faces=len(original),
        verification=verification_rate(original, anonymized, metric, threshold),
        rank1=gallery_rank1(anonymized, original, labels, metric),
        rank1_original=gallery_rank1(original, original, labels, metric),
        chance=chance_rank1(labels),
    )
