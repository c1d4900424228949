"""The sample sheet: faces of a re-ID set in their own photos, one row per photo, in four columns: original |
anonymized | restored with the right key | restored with a wrong key.

People judge the faces by eye, in the photo, not as 64 px crops; this sheet shows them that way. Each photo
takes the steps `ifadit anonymize` and a model `ifadit restore` take, without the vault: detect (dlib HOG, as
the set is read by `load_reid_set`), align every face at the backend's crop size, anonymize under the first
key, paste back with the backend's default face ellipse and colour matching; then restore the anonymized
photo at the recorded landmarks (as restore reads them from the manifest) under the right key and under a
second, unrelated key, pasted the same way. Photos keep their resolution; a photo taller than `max_height`
is shrunk for the sheet only (after every step ran at full size).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ifadit.backends.base import Backend
from ifadit.eval.reid import detect_faces, set_images, set_upsample, spread
from ifadit.faces.align import AlignedFace, align_face
from ifadit.faces.blend import default_mask_scale, paste_back
from ifadit.media.image import read_image, write_image

COLUMNS = ("original", "anonymized", "restored", "wrong key")
GAP = 4  # px between tiles
HEADER = 18  # px of the column-name strip above each block of rows
BACKGROUND = 255  # white


@dataclass(frozen=True)
class SheetRow:
    """One photo through the four columns, all uint8 RGB at the photo's size."""

    path: Path
    faces: int
    images: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # in `COLUMNS` order


def _swap_faces(
    image: np.ndarray, aligned: Sequence[AlignedFace], crops: np.ndarray, mask_scale: float, backend: Backend
) -> np.ndarray:
    out = image
    for face, crop in zip(aligned, crops, strict=True):
        out = paste_back(
            out, face, np.ascontiguousarray(crop), mask_scale=mask_scale, colour_match=backend.colour_match
        )
    return out


def sheet_row(path: Path, backend: Backend, keys: tuple[bytes, bytes], upsample: int) -> SheetRow | None:
    """The four images of the photo at `path` (None when no face is found); `keys`: (right, wrong)."""
    image = read_image(path)
    landmarks = [face.landmarks for face in detect_faces(image, upsample)]
    if not landmarks:
        return None
    size, mask_scale = backend.crop_size, default_mask_scale(backend.reversible)
    aligned = [align_face(image, points, size=size) for points in landmarks]
    crops = backend.anonymize_crops(np.stack([a.crop for a in aligned]), keys[0])
    anonymized = _swap_faces(image, aligned, crops, mask_scale, backend)
    seen = [align_face(anonymized, points, size=size) for points in landmarks]
    observed = np.stack([a.crop for a in seen])
    restores = [
        _swap_faces(
            anonymized, seen, backend.restore_crops(observed, key, pasted_at=mask_scale), mask_scale, backend
        )
        for key in keys
    ]
    return SheetRow(path, len(landmarks), (image, anonymized, restores[0], restores[1]))


def sheet_rows(root: Path, backend: Backend, keys: tuple[bytes, bytes], count: int) -> list[SheetRow]:
    """`count` photos of the set in `root`, spread evenly over it, that have a face (fewer if the set lacks
    them)."""
    rows: list[SheetRow] = []
    images, upsample = set_images(root), set_upsample(root)
    chosen = spread(images, count)
    for path in chosen + [
        p for p in images if p not in set(chosen)
    ]:  # then others, for photos without a face
        row = sheet_row(path, backend, keys, upsample)
        if row is not None:
            rows.append(row)
        if len(rows) == count:
            break
    return rows


def _fit(image: np.ndarray, max_height: int) -> Image.Image:
    picture = Image.fromarray(image)
    if picture.height <= max_height:
        return picture
    width = max(1, round(picture.width * max_height / picture.height))
    return picture.resize((width, max_height), Image.Resampling.LANCZOS)


def compose(rows: Sequence[SheetRow], blocks: int = 2, max_height: int = 320) -> np.ndarray:
    """The sheet: `rows` in `blocks` side-by-side blocks of four columns, each block under a header strip."""
    if not rows:
        raise ValueError("no rows to put on the sheet")
    tiles = [[_fit(image, max_height) for image in row.images] for row in rows]
    per_block = -(-len(tiles) // blocks)
    groups = [tiles[i : i + per_block] for i in range(0, len(tiles), per_block)]
    widths = [[max(row[c].width for row in group) for c in range(len(COLUMNS))] for group in groups]
    block_width = [sum(w) + GAP * (len(COLUMNS) - 1) for w in widths]
    heights = [HEADER + sum(max(t.height for t in row) + GAP for row in group) for group in groups]
    sheet = Image.new(
        "RGB", (sum(block_width) + 3 * GAP * (len(groups) - 1), max(heights)), (BACKGROUND,) * 3
    )
    draw, x0 = ImageDraw.Draw(sheet), 0
    for group, column_widths, width in zip(groups, widths, block_width, strict=True):
        x, y = x0, HEADER
        for name, column_width in zip(COLUMNS, column_widths, strict=True):
            draw.text((x + 2, 3), name, fill=(0, 0, 0))
            x += column_width + GAP
        for row in group:
            x = x0
            for tile, column_width in zip(row, column_widths, strict=True):
                sheet.paste(tile, (x, y))
                x += column_width + GAP
            y += max(t.height for t in row) + GAP
        x0 += width + 3 * GAP
    return np.asarray(sheet)


def write_sheet(
    root: Path, backend: Backend, keys: tuple[bytes, bytes], count: int, output: Path, quality: int = 85
) -> tuple[Path, list[SheetRow]]:
    """Compose the sheet of `count` photos of `root` and write it to `output` (JPEG at `quality`, or PNG)."""
    rows = sheet_rows(root, backend, keys, count)
    if not rows:
        raise ValueError(f"{root}: no face found in any image")
    return write_image(output, compose(rows), quality=quality), rows
