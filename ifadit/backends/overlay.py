"""deface's last two replacements: leave each face as it is ("none"), or cover it with a picture ("img").

"none" changes no pixel (the pipeline skips paste-back for a backend whose `replaces` is False) but the run
still detects, tracks and lists every face in the signed manifest: a dry run a lab can review, e.g. with
`--boxes`. "img" scales the user's picture to the canonical crop, so it turns and scales with each face,
and the pipeline pastes it under the face ellipse. Neither can be undone from pixels; the key is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ifadit.backends.base import not_reversible
from ifadit.faces.align import check_crops
from ifadit.media.image import read_image


@dataclass(frozen=True)
class KeepBackend:
    """Leaves every face unchanged (deface's `--replacewith none`)."""

    crop_size: int = 64  # crops are only cut for the manifest's regions; small is enough
    name: str = "none"
    reversible: bool = False
    colour_match: bool = False
    replaces: bool = False  # the pipeline pastes nothing back

    def anonymize_crops(self, crops: np.ndarray, key: bytes | None) -> np.ndarray:
        check_crops(crops)
        return crops.copy()

    def restore_crops(
        self, crops: np.ndarray, key: bytes | None, pasted_at: float | None = None
    ) -> np.ndarray:
        raise not_reversible(self.name)


@dataclass(frozen=True)
class ImageBackend:
    """Covers every face with the picture `image` (deface's `--replacewith img --replaceimg FILE`)."""

    image: Path | None = None  # the picture (any size; scaled to the crop); required
    crop_size: int = 128
    name: str = "img"
    reversible: bool = False
    colour_match: bool = False  # keep the picture's own colours
    _crop: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.image is None:
            raise ValueError("--replacewith img needs the picture: --replaceimg FILE")
        picture = read_image(self.image)  # InputError names a missing or unreadable file
        side = self.crop_size
        object.__setattr__(self, "_crop", cv2.resize(picture, (side, side), interpolation=cv2.INTER_AREA))

    def anonymize_crops(self, crops: np.ndarray, key: bytes | None) -> np.ndarray:
        check_crops(crops)
        return np.broadcast_to(self._crop, crops.shape).copy()

    def restore_crops(
        self, crops: np.ndarray, key: bytes | None, pasted_at: float | None = None
    ) -> np.ndarray:
        raise not_reversible(self.name)
