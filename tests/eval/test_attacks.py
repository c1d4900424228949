"""Attack building blocks: key search and averaging on constructed cases, the inversion network learns."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.data import astronaut

from ifadit.eval.attacks import average_crops, invert, key_search_rate, train_inversion


def test_key_search_succeeds_when_any_candidate_matches() -> None:
    original = np.zeros((3, 2))
    far, near_first = np.full((3, 2), 9.0), np.array([[0.0, 0.1], [9.0, 9.0], [9.0, 9.0]])
    assert key_search_rate(original, [far, far], "l2", 0.5) == 0.0
    assert key_search_rate(original, [far, near_first], "l2", 0.5) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="at least one"):
        key_search_rate(original, [], "l2", 0.5)


def test_averaging_is_the_rounded_pixel_mean() -> None:
    a, b = np.zeros((1, 2, 2, 3), np.uint8), np.full((1, 2, 2, 3), 3, np.uint8)
    assert np.array_equal(average_crops([a, b]), np.full((1, 2, 2, 3), 2, np.uint8))


def test_inversion_learns_a_fixed_transform_and_is_deterministic() -> None:
    """An 'anonymizer' that darkens by 60 grey levels is undone by the attack network."""
    image = astronaut()
    crops = np.stack([image[y : y + 16, x : x + 16] for y in range(0, 160, 20) for x in range(100, 260, 20)])
    darkened = np.clip(crops.astype(np.int16) - 60, 0, 255).astype(np.uint8)
    train, test = slice(0, 48), slice(48, None)
    net = train_inversion(darkened[train], crops[train], steps=150, seed=1)
    before = np.abs(darkened[test].astype(float) - crops[test]).mean()
    after = np.abs(invert(net, darkened[test]).astype(float) - crops[test]).mean()
    assert after < 0.5 * before
    again = train_inversion(darkened[train], crops[train], steps=150, seed=1)
    assert np.array_equal(invert(again, darkened[test]), invert(net, darkened[test]))
