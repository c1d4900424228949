"""Paste a replacement face crop back into the frame under a feathered elliptical face mask.

The mask is an ellipse fixed in canonical crop coordinates (it covers brows to chin and cheek to cheek of
dlib's padding-0.25 chip), scaled by `mask_scale` and feathered over the outer `feather` fraction of its
radius. It is evaluated analytically at every image pixel through the crop's affine map, so it is smooth at
any face size. Pixels where the mask is zero are never written: outside the mask's support the output is
bit-identical to the input.

Colour matching (optional, on by default) shifts the pasted crop's Lab mean and scales its Lab spread so
that, over the whole region the mask replaces, they match the original frame's, then replaces the crop's
low-pass Lab field (a Gaussian of `LIGHTING_SIGMA` times the region's width, averaged over the region only)
by the frame's: the surrogate takes the photo's skin tone and the fall of its light across the face, and a
generator's colour cast or shading does not show as a halo or a dark band. The blur is wide, so that what
the photo lends is lighting, not features (its anonymity is measured in docs/model.md).

Grey in, grey out: when the frame under the mask is greyscale (its channels agree to `GREY_TOLERANCE` levels
almost everywhere), the pasted crop and the frame under the mask are blended as luma only, so a grey photo
gets no colour face: the replaced region has zero chroma. Colour frames are untouched by this rule.
"""

from __future__ import annotations

import cv2
import numpy as np

from ifadit.faces.align import CANONICAL_PADDING, AlignedFace
from ifadit.media.image import check_image

# Face ellipse in dlib's unit face template (padding 0): centre and semi-axes, as fractions of the template.
ELLIPSE_CENTER = (0.49, 0.52)
ELLIPSE_AXES = (0.6, 0.7)
REVERSIBLE_MASK_SCALE = 1.3  # face ellipse of a reversible backend's surrogates (`default_mask_scale`)
DEFAULT_FEATHER = 0.2  # outer fraction of the ellipse radius over which the mask falls from 1 to 0
STD_RATIO_LIMITS = (0.5, 2.0)  # colour matching never scales a Lab channel's spread beyond these
LIGHTING_SIGMA = 0.3  # width of the lighting field taken from the photo, as a fraction of the region's width
GREY_TOLERANCE = 2  # levels a grey frame's channels may differ by (JPEG rounding of a grey photo)
GREY_SHARE = 0.99  # share of the region's pixels whose channels must agree that closely for it to count grey
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # Rec. 601 weights, as OpenCV's RGB2GRAY


def is_grey(pixels: np.ndarray) -> bool:
    """Whether RGB `pixels` [..., 3] are greyscale: channels within `GREY_TOLERANCE` levels of each other in
    at least `GREY_SHARE` of them (an empty region is not grey)."""
    flat = pixels.reshape(-1, 3).astype(np.float32)
    if len(flat) == 0:
        return False
    spread = flat.max(axis=1) - flat.min(axis=1)
    return float(np.mean(spread <= GREY_TOLERANCE)) >= GREY_SHARE


def to_grey(pixels: np.ndarray) -> np.ndarray:
    """RGB float `pixels` [..., 3] as their luma in all three channels (exactly equal channels)."""
    luma = pixels.astype(np.float32) @ LUMA
    return np.repeat(luma[..., None], 3, axis=-1)


def default_mask_scale(reversible: bool) -> float:
    """The face ellipse a backend's crops are pasted with unless a user names one: 1.0, or
    `REVERSIBLE_MASK_SCALE` for a reversible backend.

    A reversible backend's surrogate must cover all of the face that restore reads back: at 1.0 the outer
    face (jaw, brow, hair line) stays the original's, the recognizer reads a blend of both people, and right-
    key restores fail (`scripts/paste_back_restore.py` measures it; see docs/model.md, "Restore through a
    photo").
    """
    return REVERSIBLE_MASK_SCALE if reversible else 1.0


def _crop_ellipse(aligned: AlignedFace, mask_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Centre and semi-axes of the mask ellipse in this crop's pixel coordinates."""
    unit = 1 + 2 * aligned.padding
    center = (np.array(ELLIPSE_CENTER) + aligned.padding) / unit * (aligned.size - 1)
    axes = np.array(ELLIPSE_AXES) / unit * (aligned.size - 1) * mask_scale
    return center, axes


def _support_box(
    aligned: AlignedFace, image_shape: tuple[int, ...], mask_scale: float
) -> tuple[int, int, int, int]:
    """Integer image box (x0, y0, x1, y1), clipped, that contains the mask's support."""
    center, axes = _crop_ellipse(aligned, mask_scale)
    corners = center + np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * axes
    points = aligned.to_image(corners)
    height, width = image_shape[:2]
    x0, y0 = np.floor(points.min(axis=0)).astype(int) - 1
    x1, y1 = np.ceil(points.max(axis=0)).astype(int) + 2
    return max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)


def _mask_in_box(
    aligned: AlignedFace, box: tuple[int, int, int, int], mask_scale: float, feather: float
) -> np.ndarray:
    """Mask values [h, w] float32 in [0, 1] over `box`, zero outside the crop square."""
    x0, y0, x1, y1 = box
    xs, ys = np.meshgrid(np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64))
    crop_xy = aligned.to_crop(np.stack([xs.ravel(), ys.ravel()], axis=1)).reshape(*xs.shape, 2)
    center, axes = _crop_ellipse(aligned, mask_scale)
    radius = np.sqrt((((crop_xy - center) / axes) ** 2).sum(axis=-1))
    ramp = np.clip((1.0 - radius) / max(feather, 1e-6), 0.0, 1.0)
    alpha = ramp * ramp * (3.0 - 2.0 * ramp)  # smoothstep: no visible edge at either end of the band
    # The crop's own edge: fade out over 5% of its side instead of cutting, for large mask_scale values.
    edge = np.minimum(crop_xy + 0.5, aligned.size - 0.5 - crop_xy).min(axis=-1)
    window = np.clip(edge / max(0.05 * aligned.size, 1.0), 0.0, 1.0)
    return (alpha * window).astype(np.float32)


def face_mask(
    aligned: AlignedFace,
    image_shape: tuple[int, ...],
    mask_scale: float = 1.0,
    feather: float = DEFAULT_FEATHER,
) -> np.ndarray:
    """The blending mask of one face over the whole image: [H, W] float32 in [0, 1], 0 off the face."""
    if mask_scale <= 0 or not 0 <= feather <= 1:
        raise ValueError(f"need mask_scale > 0 and 0 <= feather <= 1, got {mask_scale}, {feather}")
    mask = np.zeros(image_shape[:2], dtype=np.float32)
    box = _support_box(aligned, image_shape, mask_scale)
    if box[2] > box[0] and box[3] > box[1]:
        mask[box[1] : box[3], box[0] : box[2]] = _mask_in_box(aligned, box, mask_scale, feather)
    return mask


def _warp_crop(new_crop: np.ndarray, aligned: AlignedFace, box: tuple[int, int, int, int]) -> np.ndarray:
    """Resample `new_crop` (any square size) into image box coordinates, float32 [h, w, 3]."""
    x0, y0, x1, y1 = box
    side = new_crop.shape[0]
    # Crop of another size: dlib's chips of every size share one rect, corner pixel centres aligned.
    matrix = aligned.matrix * ((side - 1) / (aligned.size - 1))
    matrix[:, 2] += matrix[:, :2] @ np.array([x0, y0], dtype=np.float64)
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))  # crop pixels per image pixel
    source = new_crop
    if scale > 1.5:  # shrinking a lot: area-average first so the warp does not alias
        small = max(int(round(side / scale)), 2)
        source = cv2.resize(new_crop, (small, small), interpolation=cv2.INTER_AREA)
        shrink = small / side
        matrix = matrix * shrink
        matrix[:, 2] += 0.5 * shrink - 0.5
    flags = (cv2.INTER_CUBIC if scale < 1.0 else cv2.INTER_LINEAR) | cv2.WARP_INVERSE_MAP
    warped = cv2.warpAffine(
        source.astype(np.float32), matrix, (x1 - x0, y1 - y0), flags=flags, borderMode=cv2.BORDER_REPLICATE
    )
    return np.clip(warped, 0.0, 255.0)


def _match_colour(new: np.ndarray, old: np.ndarray, region: np.ndarray) -> np.ndarray:
    """`new` with `old`'s Lab mean and spread inside `region`, and then `old`'s low-pass Lab field there."""
    new_lab = cv2.cvtColor(new / 255.0, cv2.COLOR_RGB2LAB)
    old_lab = cv2.cvtColor(old / 255.0, cv2.COLOR_RGB2LAB)
    weights = region[..., None].astype(np.float64)
    total = weights.sum()
    mean_new = (new_lab * weights).sum(axis=(0, 1)) / total
    mean_old = (old_lab * weights).sum(axis=(0, 1)) / total
    std_new = np.sqrt((((new_lab - mean_new) ** 2) * weights).sum(axis=(0, 1)) / total)
    std_old = np.sqrt((((old_lab - mean_old) ** 2) * weights).sum(axis=(0, 1)) / total)
    ratio = np.clip(std_old / np.maximum(std_new, 1e-3), *STD_RATIO_LIMITS)
    matched = ((new_lab - mean_new) * ratio + mean_old).astype(np.float32)
    matched += _lighting(old_lab, region) - _lighting(matched, region)
    return np.clip(cv2.cvtColor(matched, cv2.COLOR_LAB2RGB) * 255.0, 0.0, 255.0)


def _lighting(lab: np.ndarray, region: np.ndarray) -> np.ndarray:
    """The low-pass Lab field of `lab` [h, w, 3] over `region` [h, w] (normalised: no background bleeds in)."""
    weights = region.astype(np.float32)
    sigma = LIGHTING_SIGMA * float(np.sqrt(weights.sum()))
    blurred = cv2.GaussianBlur(lab * weights[..., None], (0, 0), sigma)
    coverage = cv2.GaussianBlur(weights, (0, 0), sigma)[..., None]
    return (blurred / np.maximum(coverage, 1e-6)).astype(np.float32)


def paste_back(
    image: np.ndarray,
    aligned: AlignedFace,
    new_crop: np.ndarray,
    *,
    mask_scale: float = 1.0,
    feather: float = DEFAULT_FEATHER,
    colour_match: bool = True,
) -> np.ndarray:
    """A copy of `image` with `new_crop` (square RGB uint8, canonical geometry of `aligned`) blended in."""
    check_image(image)
    check_image(new_crop)
    if new_crop.shape[0] != new_crop.shape[1]:
        raise ValueError(f"new_crop must be square, got {new_crop.shape}")
    if mask_scale <= 0 or not 0 <= feather <= 1:
        raise ValueError(f"need mask_scale > 0 and 0 <= feather <= 1, got {mask_scale}, {feather}")
    out = image.copy()
    box = _support_box(aligned, image.shape, mask_scale)
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        return out
    alpha = _mask_in_box(aligned, box, mask_scale, feather)
    touched = alpha > 0
    if not touched.any():
        return out
    old = image[y0:y1, x0:x1].astype(np.float32)
    new = _warp_crop(new_crop, aligned, box)
    if colour_match and touched.sum() >= 16:
        new = _match_colour(new, old, touched)
    if is_grey(old[touched]):  # grey in, grey out
        new, old = to_grey(new), to_grey(old)
    blended = alpha[..., None] * new + (1 - alpha[..., None]) * old
    region = out[y0:y1, x0:x1]
    region[touched] = np.clip(np.round(blended[touched]), 0, 255).astype(np.uint8)
    return out


def _canonical(crop: np.ndarray) -> AlignedFace:
    """A square canonical crop as its own frame (identity map)."""
    frame = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    return AlignedFace(crop=crop, matrix=frame, size=crop.shape[0], padding=CANONICAL_PADDING)


def crop_mask(size: int, mask_scale: float = 1.0, feather: float = DEFAULT_FEATHER) -> np.ndarray:
    """The blending mask over a canonical crop of `size` px: [size, size] float32 in [0, 1]."""
    crop = np.zeros((size, size, 3), dtype=np.uint8)
    return face_mask(_canonical(crop), crop.shape, mask_scale, feather)


def paste_in_crop(
    crop: np.ndarray,
    new_crop: np.ndarray,
    *,
    mask_scale: float = 1.0,
    feather: float = DEFAULT_FEATHER,
    colour_match: bool = True,
) -> np.ndarray:
    """`new_crop` pasted into `crop` as `paste_back` pastes it into a frame, both square crops of one canonical
    geometry: what the canonical crop re-cut from such a frame holds (outside the mask, `crop`'s pixels)."""
    return paste_back(
        crop, _canonical(crop), new_crop, mask_scale=mask_scale, feather=feather, colour_match=colour_match
    )
