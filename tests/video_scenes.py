"""Synthetic test videos built from real face photos: face patches pasted on a plain canvas, moved per frame.

`confirmation_scene` is the false-positive clip of issue 26: two re-ID faces at known places (one from the
first frame, one entering later) beside the astronaut's mission patch, which HOG boxes at a weak score in
most encoded frames although the still photo shows one face.
"""

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


def render(
    sprites: Sequence[Sprite], frames: int, size: tuple[int, int] = (WIDTH, HEIGHT)
) -> list[np.ndarray]:
    """Frames of the scene (`size` = (width, height)); later sprites are drawn over earlier ones and may
    leave the canvas."""
    width, height = size
    background = np.broadcast_to(
        np.linspace(70, 130, width, dtype=np.uint8)[None, :, None], (height, width, 3)
    )
    out = []
    for index in range(frames):
        canvas = background.copy()
        for sprite in sprites:
            position = sprite.positions[index]
            if position is None:
                continue
            x, y = position
            side_y, side_x = sprite.patch.shape[:2]
            cx0, cy0, cx1, cy1 = max(x, 0), max(y, 0), min(x + side_x, width), min(y + side_y, height)
            if cx1 > cx0 and cy1 > cy0:
                canvas[cy0:cy1, cx0:cx1] = sprite.patch[cy0 - y : cy1 - y, cx0 - x : cx1 - x]
        out.append(canvas)
    return out


MISSION_PATCH_BOX = (123, 330, 228, 435)  # where HOG boxes the mission patch in scikit-image's astronaut
DECOY_MARGIN = 28  # pixels of suit around the mission patch in the decoy sprite (kept at its native scale)
SCENE_SIZE = (560, 320)  # (width, height) of `confirmation_scene`
SCENE_FRAMES = 30


def decoy_patch(astronaut: np.ndarray) -> np.ndarray:
    """The astronaut's mission patch with some suit around it, at the photo's own scale (where HOG boxes it)."""
    x0, y0, x1, y1 = MISSION_PATCH_BOX
    return np.ascontiguousarray(
        astronaut[y0 - DECOY_MARGIN : y1 + DECOY_MARGIN, x0 - DECOY_MARGIN : x1 + DECOY_MARGIN]
    )


def face_box(position: Position) -> tuple[float, float, float, float] | None:
    """The face's box inside a patch at `position` (the middle ~70% of the patch), None when absent."""
    if position is None:
        return None
    x, y = position
    margin = PATCH * 0.15
    return (x + margin, y + margin, x + PATCH - margin, y + PATCH - margin)


@dataclass(frozen=True)
class Scene:
    """Frames with the known places of their true faces (`faces[frame]`) and of the face-like decoy."""

    frames: list[np.ndarray]
    faces: list[list[tuple[float, float, float, float]]]
    decoy: tuple[float, float, float, float]


def confirmation_scene(shared_dir: Path, astronaut: np.ndarray, frames: int = SCENE_FRAMES) -> Scene:
    """Two re-ID faces (person01 from frame 0, moving; person02 entering at frame 8) and the astronaut's
    mission patch standing still: the clip behind docs/results.md's video false-positive figures."""
    first = linear_path((10, 20), (90, 40), frames)
    second: list[Position] = [None] * 8 + linear_path((230, 180), (200, 170), frames - 8)
    decoy_at = (390, 0)
    sprites = [
        Sprite(deepface_patch(shared_dir, "person01/img28.jpg"), first),
        Sprite(deepface_patch(shared_dir, "person02/img47.jpg"), second),
        Sprite(decoy_patch(astronaut), [decoy_at] * frames),
    ]
    truth = [
        [box for box in (face_box(first[i]), face_box(second[i])) if box is not None] for i in range(frames)
    ]
    x0, y0, x1, y1 = MISSION_PATCH_BOX
    decoy = (
        decoy_at[0] + DECOY_MARGIN,
        decoy_at[1] + DECOY_MARGIN,
        decoy_at[0] + DECOY_MARGIN + x1 - x0,
        decoy_at[1] + DECOY_MARGIN + y1 - y0,
    )
    return Scene(render(sprites, frames, SCENE_SIZE), truth, decoy)
