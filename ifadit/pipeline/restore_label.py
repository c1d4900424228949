"""The corner label of a model restore: "MODEL RESTORE - investigative lead", drawn into the pixels.

A model restore re-synthesizes an identity from anonymized pixels: a lead for investigators, never an
identification. So that no copy of the picture loses that caveat, the words are drawn into the image (into
every frame of a video) in the corner that overlaps the restored faces least, white on a black box, with
text about 1/40 of the image's larger side (never under 8 px, shrunk only to fit the width). The restore
report beside the output, and a PNG's text chunk, carry the same caveat as metadata (`MODEL_NOTICE`).
The font is Pillow's built-in one, present everywhere; it has no en dash, so the label uses a hyphen.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

LABEL_TEXT = "MODEL RESTORE - investigative lead"
MODEL_NOTICE = "model restore: investigative lead"  # the metadata field's value
NOTICE_KEY = "ifadit-restore"  # PNG iTXt keyword of the notice
MIN_TEXT_PX = 8
PADDING = 0.3  # of the text size, around the text

Box = tuple[int, int, int, int]  # (x0, y0, x1, y1) pixels, x1/y1 exclusive


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _text_size(image_shape: tuple[int, ...]) -> int:
    height, width = image_shape[:2]
    size = max(MIN_TEXT_PX, round(max(height, width) / 40))
    while size > MIN_TEXT_PX and _label_extent(size)[0] > width:
        size -= 1
    return size


def _label_extent(size: int) -> tuple[int, int]:
    """Width and height of the label's box at text size `size`."""
    x0, y0, x1, y1 = _font(size).getbbox(LABEL_TEXT)
    pad = max(2, round(size * PADDING))
    return int(x1 - min(x0, 0)) + 2 * pad, int(y1 - min(y0, 0)) + 2 * pad


def _overlap(box: Box, face: Sequence[float]) -> float:
    width = min(box[2], face[2]) - max(box[0], face[0])
    height = min(box[3], face[3]) - max(box[1], face[1])
    return max(0.0, width) * max(0.0, height)


def label_box(image_shape: tuple[int, ...], faces: Sequence[Sequence[float]]) -> Box:
    """Where the label goes: the corner whose box overlaps the face boxes least (bottom right first on ties)."""
    height, width = image_shape[:2]
    label_w, label_h = (
        min(v, limit)
        for v, limit in zip(_label_extent(_text_size(image_shape)), (width, height), strict=True)
    )
    corners: list[Box] = [
        (width - label_w, height - label_h, width, height),
        (0, height - label_h, label_w, height),
        (width - label_w, 0, width, label_h),
        (0, 0, label_w, label_h),
    ]
    return min(corners, key=lambda box: sum(_overlap(box, face) for face in faces))


def draw_label(image: np.ndarray, faces: Sequence[Sequence[float]]) -> tuple[np.ndarray, Box]:
    """A copy of RGB uint8 `image` [H, W, 3] with the label drawn in `label_box`; only that box changes."""
    box = label_box(image.shape, faces)
    size = _text_size(image.shape)
    pad = max(2, round(size * PADDING))
    x0, y0, x1, y1 = box
    patch = Image.new("RGB", (x1 - x0, y1 - y0), (0, 0, 0))
    text_x0, text_y0, _, _ = _font(size).getbbox(LABEL_TEXT)
    ImageDraw.Draw(patch).text(
        (pad - min(text_x0, 0), pad - min(text_y0, 0)), LABEL_TEXT, fill=(255, 255, 255), font=_font(size)
    )
    out = image.copy()
    out[y0:y1, x0:x1] = np.asarray(patch, dtype=np.uint8)
    return out, box
