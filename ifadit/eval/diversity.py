"""Diversity and consistency of keyed surrogates, as pure functions on embeddings.

Diversity: different keys should give different people. Consistency: one key should give one person the
same surrogate across photos (so a case's video or album stays coherent).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np

from ifadit.faces.distance import Metric, paired_distances, pairwise_distances


def key_diversity(surrogates: Sequence[np.ndarray], metric: Metric, threshold: float) -> float:
    """Fraction of (face, key pair) whose two surrogates do NOT verify as one person.

    `surrogates[k]` [N,D]: embeddings of the N faces anonymized under key k (at least two keys).
    """
    if len(surrogates) < 2:
        raise ValueError(f"key diversity needs surrogates under at least 2 keys, got {len(surrogates)}")
    differ = [
        np.asarray(paired_distances(surrogates[i], surrogates[j], metric)) >= threshold
        for i, j in combinations(range(len(surrogates)), 2)
    ]
    return float(np.mean(differ))


def pair_diversity(embeddings: np.ndarray, metric: Metric, threshold: float) -> float:
    """Fraction of pairs among `embeddings` [N,D] (N >= 2) that do NOT verify as one person: how many
    different people a set of faces holds. Real face sets score near 1; a generator whose samples share one
    identity scores near 0 (and then no key can give surrogates that differ)."""
    if len(embeddings) < 2:
        raise ValueError(f"pair diversity needs at least 2 faces, got {len(embeddings)}")
    i, j = np.triu_indices(len(embeddings), k=1)
    return float((pairwise_distances(embeddings, embeddings, metric)[i, j] >= threshold).mean())


def consistency(
    surrogates: np.ndarray, labels: Sequence[str], metric: Metric, threshold: float
) -> float | None:
    """Fraction of same-person photo pairs whose surrogates under one key verify as one person (None when no
    identity has two photos)."""
    labels_arr = np.asarray(labels)
    i, j = np.triu_indices(len(labels_arr), k=1)
    same = labels_arr[i] == labels_arr[j]
    if not same.any():
        return None
    distances = pairwise_distances(surrogates, surrogates, metric)[i, j]
    return float((distances[same] < threshold).mean())
