"""Distances between face embeddings, the one definition every recognizer and every metric uses.

"l2" is the Euclidean distance, "cosine" is 1 - cosine similarity. Smaller means more alike; a pair is
accepted as the same person when its distance is below the recognizer's threshold.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Metric = Literal["l2", "cosine"]


def pairwise_distances(a: np.ndarray, b: np.ndarray, metric: Metric) -> np.ndarray:
    """Distances between the rows of `a` [N,D] and of `b` [M,D] -> [N,M] float64."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"expected [N,D] and [M,D] embeddings, got {a.shape} and {b.shape}")
    if metric == "l2":
        squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
        return np.sqrt(np.maximum(squared, 0.0))
    if metric == "cosine":
        a_unit = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        b_unit = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
        return 1.0 - a_unit @ b_unit.T
    raise ValueError(f"unknown metric {metric!r}: expected 'l2' or 'cosine'")


def paired_distances(a: np.ndarray, b: np.ndarray, metric: Metric) -> np.ndarray | float:
    """Row-wise distances of paired embeddings: a, b [N,D] -> [N]; a, b [D] -> a float."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim not in (1, 2):
        raise ValueError(
            f"expected two [D] or two [N,D] embeddings of one shape, got {a.shape} and {b.shape}"
        )
    if metric == "l2":
        out = np.linalg.norm(a - b, axis=-1)
    elif metric == "cosine":
        norms = np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-12)
        out = 1.0 - (a * b).sum(-1) / norms
    else:
        raise ValueError(f"unknown metric {metric!r}: expected 'l2' or 'cosine'")
    return float(out) if a.ndim == 1 else out
