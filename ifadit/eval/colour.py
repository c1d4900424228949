"""Colour of pasted surrogates: how far the replaced skin's colour moves from the original's (CIEDE2000), and
whether grey photos stay grey (the chroma C*ab of surrogates pasted into grey crops).

`ifadit eval` works on canonical crops, while users see surrogates pasted into their photos. So each render is
published as paste-back publishes it: pasted into its own crop (`paste_in_crop`) with the backend's default
face ellipse and its colour matching; the skin is the region that mask replaces, each pixel weighted by the
mask. Grey photos are the set's crops turned to luma, anonymized under the same key and pasted the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from skimage.color import deltaE_ciede2000, rgb2xyz, xyz2lab, xyz_tristimulus_values

from ifadit.faces.blend import crop_mask, paste_in_crop, to_grey


@dataclass(frozen=True)
class ColourReport:
    """Colour figures of one backend's pasted surrogates (definitions: docs/evaluation.md)."""

    delta_e: float  # mean CIEDE2000, original vs pasted surrogate over the replaced skin (mask-weighted)
    grey_chroma: (
        float  # mean C*ab over the replaced region of surrogates pasted into grey crops (0: grey out)
    )

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def published(crops: np.ndarray, renders: np.ndarray, mask_scale: float, colour_match: bool) -> np.ndarray:
    """[N,S,S,3] uint8 renders pasted into their crops as paste-back pastes them into photos."""
    return np.stack(
        [
            paste_in_crop(crop, render, mask_scale=mask_scale, colour_match=colour_match)
            for crop, render in zip(crops, renders, strict=True)
        ]
    )


def grey_crops(crops: np.ndarray) -> np.ndarray:
    """[N,S,S,3] uint8 crops as grey photos: their luma in all three channels."""
    return np.round(to_grey(crops)).astype(np.uint8)


# skimage's sRGB matrix maps white to XYZ a hair off its D65 reference white, which gives neutral greys a
# chroma of about 0.003; rescaling XYZ so that sRGB white is the reference white puts every grey at a* = b* = 0.
_WHITE_FIX = xyz_tristimulus_values(illuminant="D65", observer="2") / rgb2xyz(np.ones((1, 1, 3)))[0, 0]


def lab(crops: np.ndarray) -> np.ndarray:
    """uint8 sRGB crops [..., 3] -> CIELAB (D65), neutral greys exactly at a* = b* = 0."""
    return np.asarray(xyz2lab(rgb2xyz(crops.astype(np.float64) / 255.0) * _WHITE_FIX))


def mean_delta_e(a: np.ndarray, b: np.ndarray, weights: np.ndarray) -> float:
    """Mean CIEDE2000 between uint8 crops `a` and `b` [N,S,S,3], each pixel weighted by `weights` [S,S]."""
    delta = deltaE_ciede2000(lab(a), lab(b))
    return float((delta * weights).sum() / (weights.sum() * len(a)))


def mean_chroma(crops: np.ndarray, weights: np.ndarray) -> float:
    """Mean chroma C*ab = sqrt(a*² + b*²) of uint8 crops [N,S,S,3], each pixel weighted by `weights` [S,S]."""
    values = lab(crops)
    chroma = np.hypot(values[..., 1], values[..., 2])
    return float((chroma * weights).sum() / (weights.sum() * len(crops)))


def colour(
    crops: np.ndarray,
    renders: np.ndarray,
    anonymize: Callable[[np.ndarray], np.ndarray],
    mask_scale: float,
    colour_match: bool,
) -> ColourReport:
    """The colour figures of `renders` (the backend's surrogates of `crops`); `anonymize` makes the
    surrogates of the grey crops under the same key."""
    weights = crop_mask(crops.shape[1], mask_scale)
    grey = grey_crops(crops)
    return ColourReport(
        delta_e=mean_delta_e(crops, published(crops, renders, mask_scale, colour_match), weights),
        grey_chroma=mean_chroma(published(grey, anonymize(grey), mask_scale, colour_match), weights),
    )
