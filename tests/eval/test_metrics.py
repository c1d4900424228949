"""ifadit.eval.metrics: distances, rank-1 and verification thresholds on small hand-made embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from ifadit.eval.metrics import choose_threshold, far_frr, pair_distances, rank1
from ifadit.faces.distance import paired_distances, pairwise_distances


def test_pairwise_l2_and_cosine() -> None:
    a = np.array([[3.0, 4.0], [1.0, 0.0]])
    b = np.array([[0.0, 0.0], [0.0, 2.0]])
    np.testing.assert_allclose(pairwise_distances(a, b, "l2"), [[5.0, np.sqrt(9 + 4)], [1.0, np.sqrt(5)]])
    np.testing.assert_allclose(pairwise_distances(a, 10 * a, "cosine"), [[0.0, 0.4], [0.4, 0.0]], atol=1e-12)


def test_paired_distances_row_wise_and_scalar() -> None:
    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    b = np.array([[0.0, 1.0], [0.0, 3.0]])
    np.testing.assert_allclose(paired_distances(a, b, "cosine"), [1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(paired_distances(a, b, "l2"), [np.sqrt(2), 2.0])
    assert paired_distances(a[0], b[0], "l2") == pytest.approx(np.sqrt(2))
    with pytest.raises(ValueError, match="one shape"):
        paired_distances(a, b[:1], "l2")


def test_unknown_metric_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown metric 'dot'"):
        pairwise_distances(np.ones((1, 2)), np.ones((1, 2)), "dot")  # type: ignore[arg-type]


def test_rank1_counts_misses_and_ignores_singletons() -> None:
    # b1 sits right next to a1, far from b0; c has one face and is therefore no query.
    emb = np.array([[0.0], [0.1], [1.0], [0.15], [5.0]])
    labels = ["a", "a", "b", "b", "c"]
    # queries a0 -> a1 (hit), a1 -> b1 (miss), b0 -> b1 (hit), b1 -> a1 (miss)
    assert rank1(emb, labels, "l2") == pytest.approx(0.5)
    assert rank1(emb[[0, 1, 2, 4]], ["a", "a", "b", "c"], "l2") == 1.0
    with pytest.raises(ValueError, match="no identity has two faces"):
        rank1(emb[:2], ["a", "b"], "l2")


def test_pair_distances_lists_each_unordered_pair_once() -> None:
    emb = np.arange(8, dtype=np.float64).reshape(4, 2)
    distances, same = pair_distances(emb, ["x", "x", "y", "y"], "l2")
    assert len(distances) == 6
    assert same.tolist() == [True, False, False, False, False, True]
    np.testing.assert_allclose(distances[0], np.sqrt(8))


def test_far_frr_counts_accepts_strictly_below_threshold() -> None:
    distances = np.array([0.1, 0.5, 0.4, 0.9])
    same = np.array([True, True, False, False])
    assert far_frr(distances, same, 0.45) == (0.5, 0.5)
    assert far_frr(distances, same, 0.5) == (0.5, 0.5)  # 0.5 is not below 0.5: rejected
    assert far_frr(distances, same, 1.0) == (1.0, 0.0)
    with pytest.raises(ValueError, match="both"):
        far_frr(distances[:2], same[:2], 0.3)


def test_choose_threshold_separates_separable_pairs() -> None:
    distances = np.array([0.2, 0.3, 0.35, 0.7, 0.8])
    same = np.array([True, True, True, False, False])
    threshold = choose_threshold(distances, same)
    assert threshold == pytest.approx(0.525)
    assert far_frr(distances, same, threshold) == (0.0, 0.0)


def test_choose_threshold_minimises_total_error_like_brute_force() -> None:
    rng = np.random.default_rng(7)
    distances = np.concatenate([rng.normal(0.4, 0.1, 60), rng.normal(0.7, 0.1, 200)]).round(2)  # with ties
    same = np.arange(260) < 60
    threshold = choose_threshold(distances, same)
    best = min(sum(far_frr(distances, same, t)) for t in np.linspace(0, 1.2, 2401))
    assert sum(far_frr(distances, same, threshold)) == pytest.approx(best)
    assert not np.isclose(distances, threshold).any()  # never exactly on an observed distance


def test_frechet_distance_known_answers() -> None:
    from ifadit.eval.metrics import frechet_distance

    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 3))
    x -= x.mean(0)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    # Shifted means: the distance is the squared shift (covariances equal).
    assert frechet_distance(x, x + np.array([3.0, 0.0, 4.0])) == pytest.approx(25.0, rel=1e-6)
    # Scaling by 2 makes S_b = 4 S_a, so the distance is Tr(S_a + 4 S_a - 2·2 S_a) = Tr(S_a) (≈ 3 here).
    assert frechet_distance(x, 2.0 * x) == pytest.approx(np.trace(np.cov(x, rowvar=False)), rel=1e-6)
    # Rank-deficient covariances (fewer samples than dimensions) stay finite and non-negative.
    small = frechet_distance(rng.normal(size=(20, 64)), rng.normal(size=(30, 64)))
    assert np.isfinite(small) and small >= 0.0
    with pytest.raises(ValueError, match="two"):
        frechet_distance(x, x[:, :2])
