"""Classic non-reversible baselines on canonical crops: Gaussian blur, pixelation, solid mask.

Strengths are set relative to the canonical crop, so they are the same for a face of 40 px or 400 px in
the frame (the crop is cut at `crop_size` from the face's landmarks and pasted back under the face mask).
The key is ignored; none of these can be undone from pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ifadit.backends.base import not_reversible
from ifadit.faces.align import check_crops


@dataclass(frozen=True)
class BlurBackend:
    """Gaussian blur with standard deviation `sigma` x crop side (0.06 -> 7.7 px at 128 px, eyes ~45 px apart)."""

    sigma: float = 0.06  # Gaussian std as a fraction of the crop side; 0.03 leaves features readable
    crop_size: int = 128  # canonical crop side the pipeline aligns at
    name: str = "blur"
    reversible: bool = False
    colour_match: bool = False  # the blurred crop already has the frame's colours

    def __post_init__(self) -> None:
        if self.sigma <= 0 or self.crop_size < 8:
            raise ValueError(f"need sigma > 0 and crop_size >= 8, got {self.sigma}, {self.crop_size}")

    def anonymize_crops(self, crops: np.ndarray, key: bytes | None) -> np.ndarray:
        check_crops(crops)
        sigma = self.sigma * crops.shape[1]
        return np.stack(
            [cv2.GaussianBlur(crop, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT) for crop in crops]
        ).reshape(crops.shape)

    def restore_crops(
        self, crops: np.ndarray, key: bytes | None, pasted_at: float | None = None
    ) -> np.ndarray:
        raise not_reversible(self.name)


@dataclass(frozen=True)
class PixelateBackend:
    """Mosaic: each `block` x `block` crop-pixel cell becomes its mean colour (16 at 128 px: 8 x 8 cells)."""

    block: int = 16  # cell side in crop pixels; the face ellipse spans about 5-6 cells at the default
    crop_size: int = 128
    name: str = "pixelate"
    reversible: bool = False
    colour_match: bool = False

    def __post_init__(self) -> None:
        if self.block < 2 or self.crop_size < self.block:
            raise ValueError(
                f"need 2 <= block <= crop_size, got block={self.block}, crop_size={self.crop_size}"
            )

    def anonymize_crops(self, crops: np.ndarray, key: bytes | None) -> np.ndarray:
        check_crops(crops)
        side = crops.shape[1]
        cells = max(-(-side // self.block), 1)
        out = np.empty_like(crops)
        for i, crop in enumerate(crops):
            small = cv2.resize(crop, (cells, cells), interpolation=cv2.INTER_AREA)
            out[i] = cv2.resize(small, (side, side), interpolation=cv2.INTER_NEAREST)
        return out

    def restore_crops(
        self, crops: np.ndarray, key: bytes | None, pasted_at: float | None = None
    ) -> np.ndarray:
        raise not_reversible(self.name)


@dataclass(frozen=True)
class MaskBackend:
    """Solid fill: the whole face mask becomes one colour (default black)."""

    colour: tuple[int, int, int] = (0, 0, 0)  # RGB fill
    crop_size: int = 64  # the fill has no detail, so a small crop is enough
    name: str = "mask"
    reversible: bool = False
    colour_match: bool = False  # keep the chosen colour; matching would turn it skin-coloured

    def __post_init__(self) -> None:
        if len(self.colour) != 3 or not all(0 <= c <= 255 for c in self.colour):
            raise ValueError(f"colour must be three values in 0..255, got {self.colour}")

    def anonymize_crops(self, crops: np.ndarray, key: bytes | None) -> np.ndarray:
        check_crops(crops)
        out = np.empty_like(crops)
        out[...] = np.array(self.colour, dtype=np.uint8)
        return out

    def restore_crops(
        self, crops: np.ndarray, key: bytes | None, pasted_at: float | None = None
    ) -> np.ndarray:
        raise not_reversible(self.name)
