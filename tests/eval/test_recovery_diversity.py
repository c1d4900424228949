"""Recovery (PSNR/SSIM/exact), key diversity and consistency on constructed inputs with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.data import astronaut

from ifadit.eval.diversity import consistency, key_diversity, pair_diversity
from ifadit.eval.recovery import PSNR_CAP, identity_cosine, recovery


def test_exact_restores_score_perfectly_and_noise_does_not() -> None:
    crops = np.stack([astronaut()[:64, :64], astronaut()[100:164, 200:264]])
    perfect = recovery(crops, crops.copy())
    assert perfect.psnr == PSNR_CAP and perfect.ssim == pytest.approx(1.0) and perfect.exact == 1.0
    noisy = recovery(crops, np.random.default_rng(0).integers(0, 256, crops.shape, dtype=np.uint8))
    assert noisy.psnr < 15 and noisy.ssim < 0.2 and noisy.exact == 0.0
    with pytest.raises(ValueError, match="differ in shape"):
        recovery(crops, crops[:1])


def test_identity_cosine() -> None:
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    assert identity_cosine(a, a) == pytest.approx(1.0)
    assert identity_cosine(a, -a) == pytest.approx(-1.0)


def test_key_diversity_counts_key_pairs_that_change_the_face() -> None:
    faces = np.eye(4)
    assert key_diversity([faces, faces, faces], "l2", 0.5) == 0.0  # keys do nothing
    assert key_diversity([faces, faces + 5, faces - 5], "l2", 0.5) == 1.0
    assert key_diversity([faces, faces, faces + 5], "l2", 0.5) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="at least 2 keys"):
        key_diversity([faces], "l2", 0.5)


def test_consistency_over_same_person_pairs() -> None:
    surrogates = np.array([[0.0], [0.1], [5.0], [9.0]])
    assert consistency(surrogates, ["a", "a", "b", "b"], "l2", 0.5) == 0.5
    assert consistency(surrogates, ["a", "b", "c", "d"], "l2", 0.5) is None


def test_pair_diversity_counts_pairs_of_different_people() -> None:
    assert pair_diversity(np.zeros((5, 3)), "l2", 0.5) == 0.0  # one person five times
    assert pair_diversity(np.eye(3) * 5, "l2", 0.5) == 1.0
    assert pair_diversity(np.array([[0.0], [0.1], [5.0]]), "l2", 0.5) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="at least 2 faces"):
        pair_diversity(np.zeros((1, 3)), "l2", 0.5)
