"""Colour figures of pasted surrogates: CIEDE2000 over the replaced skin, chroma of surrogates in grey photos."""

from __future__ import annotations

import numpy as np

from ifadit.eval.colour import colour, grey_crops, mean_chroma, mean_delta_e, published
from ifadit.faces.blend import crop_mask
from tests.ifadit_support import astronaut_crops

SIZE = 64


def _crops(astronaut: np.ndarray) -> np.ndarray:
    return astronaut_crops(astronaut, 3, size=SIZE)


def test_delta_e_is_zero_for_the_same_crops_and_grows_with_a_tint(astronaut: np.ndarray) -> None:
    crops, weights = _crops(astronaut), crop_mask(SIZE, 1.3)
    tinted = np.clip(crops.astype(int) + [30, 0, -30], 0, 255).astype(np.uint8)
    assert mean_delta_e(crops, crops, weights) == 0.0
    assert 5 < mean_delta_e(crops, tinted, weights) < 40


def test_chroma_of_grey_crops_is_zero_and_of_colour_faces_is_not(astronaut: np.ndarray) -> None:
    crops, weights = _crops(astronaut), crop_mask(SIZE)
    grey = grey_crops(crops)
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    assert mean_chroma(grey, weights) < 1e-3
    assert mean_chroma(crops, weights) > 5


def test_a_colour_surrogate_in_a_grey_photo_is_published_grey(astronaut: np.ndarray) -> None:
    crops = _crops(astronaut)
    flipped = crops[::-1].copy()  # another colour face as each one's surrogate

    report = colour(crops, flipped, lambda grey: flipped, mask_scale=1.3, colour_match=True)
    assert report.grey_chroma < 1e-3  # grey in, grey out
    assert report.delta_e > 1
    pasted = published(grey_crops(crops), flipped, 1.3, True)
    assert (pasted[..., 0] == pasted[..., 2]).all()
    assert report.to_dict() == {"delta_e": report.delta_e, "grey_chroma": report.grey_chroma}
