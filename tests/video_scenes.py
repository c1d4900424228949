"""Synthetic test videos built from real face photos: face patches pasted on a plain canvas, moved per frame."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ifadit.faces.registry import get_detector
from ifadit.media.image import read_image

PATCH = 130  # patch side in pixels; the face inside is about 90 px, large enough for HOG without upsampling
HEIGHT, WIDTH = 240, 320
FPS = 10

Position = tuple[int, int] | None  # top-left (x, y) of a patch in one frame, None when it is absent


def face_patch(image: np.ndarray) -> np.ndarray:
    """A PATCH x PATCH crop centred on the most confident face HOG finds in `image`."""
    face = get_detector("hog").detect(image)[0]
    x0, y0, x1, y1 = face.box
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * 0.72
    crop = image[int(max(cy - half, 0)) : int(cy + half), int(max(cx - half, 0)) : int(cx + half)]
    return cv2.resize(crop, (PATCH, PATCH), interpolation=cv2.INTER_AREA)


def deepface_patch(shared_dir: Path, relative: str) -> np.ndarray:
    """Face patch of one photo of `data/reid/deepface`, e.g. "person01/img28.jpg"."""
    return face_patch(read_image(shared_dir / "data" / "reid" / "deepface" / relative))


@dataclass(frozen=True)
class Sprite:
    """A face patch and where it sits in each frame."""

    patch: np.ndarray
    positions: Sequence[Position]


def linear_path(start: tuple[int, int], end: tuple[int, int], frames: int) -> list[Position]:
    """Positions moving at constant speed from `start` to `end` over `frames` frames."""
    xs = np.linspace(start[0], end[0], frames).round().astype(int)
    ys = np.linspace(start[1], end[1], frames).round().astype(int)
    return [(int(x), int(y)) for x, y in zip(xs, ys, strict=True)]


def render(sprites: Sequence[Sprite], frames: int) -> list[np.ndarray]:
    """Frames of the scene; later sprites are drawn over earlier ones and may leave the canvas."""
    background = np.broadcast_to(
        np.linspace(70, 130, WIDTH, dtype=np.uint8)[None, :, None], (HEIGHT, WIDTH, 3)
    )
    out = []
    for index in range(frames):
        canvas = background.copy()
        for sprite in sprites:
            position = sprite.positions[index]
            if position is None:
                continue
            x, y = position
            cx0, cy0, cx1, cy1 = max(x, 0), max(y, 0), min(x + PATCH, WIDTH), min(y + PATCH, HEIGHT)
            if cx1 > cx0 and cy1 > cy0:
                canvas[cy0:cy1, cx0:cx1] = sprite.patch[cy0 - y : cy1 - y, cx0 - x : cx1 - x]
        out.append(canvas)
    return out
