"""Canonical face crops: dlib's face-chip geometry (padding 0.25) at any size, with the image->crop transform.

The whole project uses ONE crop geometry: the similarity transform that `dlib.get_face_chip_details` fits
from the 5 landmarks to dlib's mean-face template, here with padding 0.25. It is what dlib's 128-D
recognizer expects at 150 px, and what the generator's training crops were cut with
(`dlib.get_face_chip(img, shape5, size, padding=0.25)`). Identity recognizers read other sizes by plain
resizing.

Extraction goes through `dlib.extract_image_chip` itself, so a crop reproduces dlib's chip bit for bit
(including its anti-aliasing image pyramid for large downscales and its zero (black) fill outside the image),
while landmarks may carry sub-pixel floats. `AlignedFace.matrix` is dlib's nominal chip geometry
(`get_mapping_to_chip`); for chips cut from a pyramid level dlib's content sits within ~0.25 crop pixel of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dlib
import numpy as np

from ifadit.media.image import check_image

CANONICAL_PADDING = 0.25
CROP_SIZES: tuple[int, ...] = (64, 128, 150, 256)

# dlib's 5-point mean-face template (interpolation.h, get_face_chip_details), unit square, padding 0,
# in the landmark order of ifadit.faces.detect.LANDMARK_NAMES.
TEMPLATE_5 = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ],
    dtype=np.float64,
)


@dataclass(frozen=True, eq=False)
class AlignedFace:
    """A canonical crop and the affine map that cut it. `eq=False`: compares by identity (arrays)."""

    crop: np.ndarray = field(repr=False)  # [size, size, 3] uint8 RGB
    matrix: np.ndarray = field(repr=False)  # [2, 3] float64, image (x, y) -> crop (x, y)
    size: int  # crop side in pixels
    padding: float  # dlib face-chip padding (0.25 project-wide)

    @property
    def inverse(self) -> np.ndarray:
        """[2, 3] float64 affine map crop (x, y) -> image (x, y)."""
        return invert_affine(self.matrix)

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Map image points [N, 2] into crop coordinates."""
        return apply_affine(self.matrix, points)

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """Map crop points [N, 2] back into image coordinates."""
        return apply_affine(self.inverse, points)


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a [2, 3] affine map to points [N, 2]."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return points @ matrix[:, :2].T + matrix[:, 2]


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a [2, 3] affine map."""
    linear = np.linalg.inv(matrix[:, :2])
    return np.hstack([linear, -linear @ matrix[:, 2:3]])


def template_points(size: int, padding: float = CANONICAL_PADDING) -> np.ndarray:
    """Where the 5 landmarks land in a `size` px crop with `padding` ([5, 2] float64, dlib's formula)."""
    return (padding + TEMPLATE_5) / (2 * padding + 1) * size


def chip_details(landmarks5: np.ndarray, size: int, padding: float = CANONICAL_PADDING) -> dlib.chip_details:
    """dlib's chip geometry (rect + angle) for float landmarks: the similarity fit get_face_chip_details does."""
    landmarks5 = np.asarray(landmarks5, dtype=np.float64)
    if landmarks5.shape != (5, 2):
        raise ValueError(f"landmarks5 must have shape (5, 2), got {landmarks5.shape}")
    if size < 1 or padding < 0:
        raise ValueError(f"need size >= 1 and padding >= 0, got size={size}, padding={padding}")
    chip = dlib.dpoints([dlib.dpoint(float(x), float(y)) for x, y in template_points(size, padding)])
    img = dlib.dpoints([dlib.dpoint(float(x), float(y)) for x, y in landmarks5])
    return dlib.chip_details(chip, img, dlib.chip_dims(size, size))


def chip_matrix(details: dlib.chip_details) -> np.ndarray:
    """dlib's `get_mapping_to_chip` as a [2, 3] matrix: rotated rect corners -> chip corners."""
    rect = details.rect
    center = np.array([(rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2])
    cos, sin = np.cos(details.angle), np.sin(details.angle)
    rotation = np.array([[cos, -sin], [sin, cos]])
    corners = np.array([[rect.left(), rect.top()], [rect.right(), rect.top()], [rect.right(), rect.bottom()]])
    src = (corners - center) @ rotation.T + center
    dst = np.array([[0, 0], [details.cols - 1, 0], [details.cols - 1, details.rows - 1]], dtype=np.float64)
    # Solve [x y 1] @ M.T = dst exactly for the three corner pairs.
    return np.linalg.solve(np.hstack([src, np.ones((3, 1))]), dst).T


def align_face(
    image: np.ndarray,
    landmarks5: np.ndarray,
    size: int = 64,
    padding: float = CANONICAL_PADDING,
) -> AlignedFace:
    """Cut the canonical crop of one face: dlib's face chip for these landmarks, plus its image->crop map."""
    check_image(image)
    details = chip_details(landmarks5, size, padding)
    crop = dlib.extract_image_chip(np.ascontiguousarray(image), details)
    matrix = chip_matrix(details)
    crop.setflags(write=False)
    matrix.setflags(write=False)
    return AlignedFace(crop=crop, matrix=matrix, size=int(size), padding=float(padding))


def check_crops(crops: np.ndarray, *, allow_empty: bool = True) -> None:
    """Raise `ValueError` unless `crops` is a batch of canonical crops: uint8 [N, S, S, 3], square, RGB.

    The one check of every stage that takes canonical crops; the two kinds of caller differ in one rule:
    - backends (`allow_empty=True`, the default) take an empty batch (N = 0), a frame without faces, and
      return it as it is; their message says which rule failed (dtype and rank, or square RGB);
    - recognizers (`allow_empty=False`) have nothing to embed in an empty batch, so they also require
      N >= 1, and raise one message, "expected canonical crops ...", for any fault.
    """
    is_array = isinstance(crops, np.ndarray)
    got = f"{crops.dtype} {crops.shape}" if is_array else type(crops).__name__
    typed = is_array and crops.dtype == np.uint8 and crops.ndim == 4
    square_rgb = typed and crops.shape[1] == crops.shape[2] and crops.shape[3] == 3
    if not allow_empty:
        if not square_rgb or len(crops) == 0:
            raise ValueError(f"expected canonical crops uint8 [N,S,S,3], got {got}")
    elif not typed:
        raise ValueError(f"expected uint8 crops [N, S, S, 3], got {got}")
    elif not square_rgb:
        raise ValueError(f"expected square RGB crops [N, S, S, 3], got {crops.shape}")
