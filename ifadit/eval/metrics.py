"""Evaluation metrics as pure functions on embeddings and labels: distances, rank-1, verification FAR/FRR.

Distances come from `ifadit.faces.distance` ("l2" or "cosine"; smaller means more alike).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ifadit.faces.distance import Metric, pairwise_distances


def rank1(embeddings: np.ndarray, labels: Sequence[str], metric: Metric) -> float:
    """Leave-one-out rank-1 re-identification rate: is each face's nearest other face the same identity?

    Faces whose identity has no other face cannot be re-identified: they stay in the gallery but are not queries.
    """
    labels_arr = np.asarray(labels)
    if len(labels_arr) != len(embeddings):
        raise ValueError(f"{len(embeddings)} embeddings but {len(labels_arr)} labels")
    distances = pairwise_distances(embeddings, embeddings, metric)
    np.fill_diagonal(distances, np.inf)
    same = labels_arr[:, None] == labels_arr[None, :]
    queries = (same.sum(1) - 1) > 0
    if not queries.any():
        raise ValueError("no identity has two faces: rank-1 is undefined")
    nearest = distances.argmin(1)
    return float((labels_arr[nearest] == labels_arr)[queries].mean())


def pair_distances(
    embeddings: np.ndarray, labels: Sequence[str], metric: Metric
) -> tuple[np.ndarray, np.ndarray]:
    """Every unordered pair i < j: its distance and whether both faces share an identity."""
    labels_arr = np.asarray(labels)
    if len(labels_arr) != len(embeddings):
        raise ValueError(f"{len(embeddings)} embeddings but {len(labels_arr)} labels")
    i, j = np.triu_indices(len(labels_arr), k=1)
    distances = pairwise_distances(embeddings, embeddings, metric)[i, j]
    return distances, labels_arr[i] == labels_arr[j]


def far_frr(distances: np.ndarray, same: np.ndarray, threshold: float) -> tuple[float, float]:
    """(false-accept rate, false-reject rate) when pairs with distance < `threshold` are accepted."""
    distances = np.asarray(distances)
    same = np.asarray(same, dtype=bool)
    if not same.any() or same.all():
        raise ValueError("need both same-identity and different-identity pairs")
    accepted = distances < threshold
    return float(accepted[~same].mean()), float((~accepted[same]).mean())


def choose_threshold(distances: np.ndarray, same: np.ndarray) -> float:
    """The threshold minimising FAR + FRR; ties go to the lowest such threshold (fewer false accepts).

    The returned value is a midpoint between two consecutive distinct distances (or just outside the range),
    so no observed distance sits exactly on it.
    """
    distances = np.asarray(distances, dtype=np.float64)
    same = np.asarray(same, dtype=bool)
    far_frr(distances, same, 0.0)  # validates both kinds of pair are present
    order = np.argsort(distances, kind="stable")
    d_sorted, s_sorted = distances[order], same[order]
    accepted_same = np.concatenate([[0], np.cumsum(s_sorted)])
    accepted_diff = np.concatenate([[0], np.cumsum(~s_sorted)])
    cuts = np.concatenate(
        [[0], np.nonzero(np.diff(d_sorted) > 0)[0] + 1, [len(d_sorted)]]
    )  # accept the first k
    errors = accepted_diff[cuts] / (~same).sum() + 1.0 - accepted_same[cuts] / same.sum()
    k = int(cuts[int(np.argmin(errors))])
    if k == 0:
        return float(d_sorted[0] - 1e-6)
    if k == len(d_sorted):
        return float(d_sorted[-1] + 1e-6)
    return float((d_sorted[k - 1] + d_sorted[k]) / 2)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets [N,D] and [M,D] (as in FID).

    ||mu_a - mu_b||² + Tr(S_a + S_b - 2 (S_a S_b)^½); the matrix square root comes from the
    eigen-decomposition of the symmetric S_a^½ S_b S_a^½, which is stable for rank-deficient
    covariances (fewer samples than dimensions).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"expected two [N,D] feature sets with N >= 2, got {a.shape} and {b.shape}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    middle = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_sqrt = np.sqrt(np.clip(middle, 0.0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_sqrt)
