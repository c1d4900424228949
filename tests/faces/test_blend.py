"""ifadit.faces.blend: paste-back geometry, the face mask, colour matching, and untouched pixels off the mask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ifadit.faces.align import AlignedFace, align_face
from ifadit.faces.blend import face_mask, is_grey, paste_back, paste_in_crop, to_grey
from ifadit.faces.detect import DlibHogDetector
from ifadit.media.image import read_image


@pytest.fixture(scope="module")
def landmarks(astronaut: np.ndarray) -> np.ndarray:
    return DlibHogDetector().detect(astronaut)[0].landmarks


def noise_crop(size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


@pytest.mark.parametrize("size", (64, 128, 256))
def test_pixels_off_the_mask_are_bit_identical(
    astronaut: np.ndarray, landmarks: np.ndarray, size: int
) -> None:
    aligned = align_face(astronaut, landmarks, size)
    for mask_scale in (0.8, 1.0, 1.4):
        out = paste_back(astronaut, aligned, noise_crop(size), mask_scale=mask_scale)
        mask = face_mask(aligned, astronaut.shape, mask_scale)
        off = mask == 0
        np.testing.assert_array_equal(out[off], astronaut[off])
        assert (out[mask == 1] != astronaut[mask == 1]).any(axis=-1).mean() > 0.9
        assert out.dtype == np.uint8 and out.shape == astronaut.shape


def test_input_image_is_not_modified(astronaut: np.ndarray, landmarks: np.ndarray) -> None:
    before = astronaut.copy()
    paste_back(astronaut, align_face(astronaut, landmarks, 64), noise_crop(64))
    np.testing.assert_array_equal(astronaut, before)


@pytest.mark.parametrize(("size", "limit"), [(64, 6.0), (256, 3.0)])
def test_pasting_the_own_crop_back_is_nearly_lossless(
    astronaut: np.ndarray, landmarks: np.ndarray, size: int, limit: float
) -> None:
    """Geometry check: if the inverse map were off by a pixel or more the error would be far larger."""
    aligned = align_face(astronaut, landmarks, size)
    out = paste_back(astronaut, aligned, np.asarray(aligned.crop))
    inside = face_mask(aligned, astronaut.shape) > 0
    assert np.abs(out.astype(int) - astronaut)[inside].mean() < limit
    shifted = AlignedFace(
        crop=aligned.crop,
        matrix=aligned.matrix + [[0, 0, 2.0], [0, 0, 0]],
        size=size,
        padding=aligned.padding,
    )
    off = paste_back(astronaut, shifted, np.asarray(aligned.crop))
    assert (
        np.abs(off.astype(int) - astronaut)[inside].mean()
        > np.abs(out.astype(int) - astronaut)[inside].mean()
    )


def test_crop_of_another_size_pastes_into_the_same_place(
    astronaut: np.ndarray, landmarks: np.ndarray
) -> None:
    small = align_face(astronaut, landmarks, 64)
    large = align_face(astronaut, landmarks, 256)
    out = paste_back(astronaut, small, np.asarray(large.crop))  # e.g. a 256 px generator on a 64 px alignment
    inside = face_mask(small, astronaut.shape) > 0
    assert np.abs(out.astype(int) - astronaut)[inside].mean() < 3.0


def test_mask_covers_the_face_and_nothing_far_away(astronaut: np.ndarray, landmarks: np.ndarray) -> None:
    aligned = align_face(astronaut, landmarks, 64)
    mask = face_mask(aligned, astronaut.shape)
    assert mask.shape == astronaut.shape[:2] and mask.dtype == np.float32
    assert mask.min() == 0.0 and mask.max() == 1.0
    for x, y in landmarks.round().astype(int):
        assert mask[y, x] == 1.0  # eyes and nose fully replaced
    ys, xs = np.nonzero(mask)
    assert 150 < xs.min() < xs.max() < 290  # astronaut face ~ (175,76)-(265,166)
    assert 50 < ys.min() < ys.max() < 200


def test_mask_scale_and_feather(astronaut: np.ndarray, landmarks: np.ndarray) -> None:
    aligned = align_face(astronaut, landmarks, 64)
    base = face_mask(aligned, astronaut.shape)
    wide = face_mask(aligned, astronaut.shape, mask_scale=1.3)
    assert ((base > 0) <= (wide > 0)).all() and (wide > 0).sum() > 1.5 * (base > 0).sum()
    hard = face_mask(aligned, astronaut.shape, mask_scale=0.8, feather=0.0)  # away from the crop's faded edge
    assert set(np.unique(hard)) == {0.0, 1.0}
    soft = face_mask(aligned, astronaut.shape, feather=0.5)
    assert ((soft > 0) & (soft < 1)).sum() > ((base > 0) & (base < 1)).sum()
    with pytest.raises(ValueError, match="mask_scale > 0"):
        face_mask(aligned, astronaut.shape, mask_scale=0)


def test_colour_matching_hides_a_colour_cast_at_the_seam(
    astronaut: np.ndarray, landmarks: np.ndarray
) -> None:
    aligned = align_face(astronaut, landmarks, 128)
    cast = np.clip(aligned.crop.astype(int) + [40, 0, -25], 0, 255).astype(np.uint8)  # a generator's tint
    mask = face_mask(aligned, astronaut.shape)
    ring = (mask > 0) & (mask < 1)
    plain = paste_back(astronaut, aligned, cast, colour_match=False)
    matched = paste_back(astronaut, aligned, cast, colour_match=True)
    err_plain = np.abs(plain.astype(int) - astronaut)[ring].mean()
    err_matched = np.abs(matched.astype(int) - astronaut)[ring].mean()
    assert err_matched < 0.5 * err_plain
    np.testing.assert_array_equal(matched[mask == 0], astronaut[mask == 0])


def test_face_cut_by_the_image_border(astronaut: np.ndarray, landmarks: np.ndarray) -> None:
    cut = np.ascontiguousarray(astronaut[:, 215:])  # the left half of the face is outside the frame
    aligned = align_face(cut, landmarks - [215.0, 0.0], 64)
    out = paste_back(cut, aligned, noise_crop(64))
    mask = face_mask(aligned, cut.shape)
    assert mask[:, 0].max() > 0  # the mask reaches the border
    np.testing.assert_array_equal(out[mask == 0], cut[mask == 0])
    assert (out[mask == 1] != cut[mask == 1]).any()


def test_several_faces_on_a_reid_photo(shared_dir: Path) -> None:
    image = read_image(sorted((shared_dir / "data/reid/deepface").glob("*/*.jpg"))[0])
    faces = DlibHogDetector().detect(image)
    out = image
    union = np.zeros(image.shape[:2], dtype=bool)
    for i, face in enumerate(faces):
        aligned = align_face(image, face.landmarks, 64)
        out = paste_back(out, aligned, noise_crop(64, seed=i))
        union |= face_mask(aligned, image.shape) > 0
    assert faces
    np.testing.assert_array_equal(out[~union], image[~union])


def test_rejects_bad_crops(astronaut: np.ndarray, landmarks: np.ndarray) -> None:
    aligned = align_face(astronaut, landmarks, 64)
    with pytest.raises(ValueError, match="square"):
        paste_back(astronaut, aligned, np.zeros((64, 32, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="RGB uint8"):
        paste_back(astronaut, aligned, np.zeros((64, 64, 3), dtype=np.float32))


def test_a_surrogate_takes_the_fall_of_the_photos_light_across_the_face(
    astronaut: np.ndarray, landmarks: np.ndarray
) -> None:
    """The photo is lit from its right (a brightness ramp across the face); the surrogate, another face lit
    evenly, keeps its own features but takes the ramp, which a mean-and-spread match alone cannot give."""
    crop = align_face(astronaut, landmarks, 128).crop.astype(np.float32)
    even = (crop + crop[:, ::-1]) / 2  # mirror-symmetric: lit the same from both sides
    ramp = np.linspace(0.45, 1.15, crop.shape[1], dtype=np.float32)[None, :, None]
    lit = np.clip(even * ramp, 0, 255).astype(np.uint8)
    surrogate = np.roll(even, 8, axis=0).astype(np.uint8)  # other features (moved down), evenly lit
    mask = (
        np.asarray(paste_in_crop(np.zeros_like(lit), np.full_like(lit, 255), colour_match=False)[..., 0])
        == 255
    )
    left, right = mask.copy(), mask.copy()
    left[:, 64:], right[:, :64] = False, False

    def ramp_of(image: np.ndarray) -> float:
        grey = image.astype(np.float32).mean(axis=2)
        return float(grey[right].mean() - grey[left].mean())

    pasted = paste_in_crop(lit, surrogate)
    assert ramp_of(pasted) > 0.5 * ramp_of(lit) > 0
    assert abs(ramp_of(surrogate)) < 0.2 * ramp_of(lit)
    assert not np.array_equal(pasted[mask], lit[mask])


def test_paste_in_crop_keeps_the_crop_off_the_mask_and_takes_the_new_face_inside(
    astronaut: np.ndarray,
) -> None:
    """What a canonical crop re-cut from a pasted frame holds: the new crop inside the face ellipse, the old
    crop's pixels where the mask is zero."""
    old = np.ascontiguousarray(astronaut[40:104, 160:224])
    new = np.full_like(old, 90)
    pasted = paste_in_crop(old, new, mask_scale=1.0, colour_match=False)
    assert np.array_equal(pasted[:3, :3], old[:3, :3]) and np.array_equal(pasted[-3:, -3:], old[-3:, -3:])
    assert np.array_equal(pasted[28:36, 28:36], new[28:36, 28:36])
    matched = paste_in_crop(old, new, mask_scale=1.0)
    assert not np.array_equal(matched[28:36, 28:36], new[28:36, 28:36])  # colours matched to the old crop's


def test_a_grey_photo_gets_a_grey_face(astronaut: np.ndarray, landmarks: np.ndarray) -> None:
    grey = np.repeat(np.asarray(Image.fromarray(astronaut).convert("L"))[..., None], 3, axis=-1)
    aligned = align_face(grey, landmarks, 64)
    colour_face = align_face(astronaut, landmarks, 64).crop[::-1].copy()  # a colour surrogate
    for colour_match in (True, False):
        out = paste_back(grey, aligned, colour_face, mask_scale=1.3, colour_match=colour_match)
        assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()  # chroma 0
        replaced = face_mask(aligned, grey.shape, 1.3) == 1
        assert np.abs(out[replaced].astype(int) - grey[replaced]).mean() > 5  # the face was replaced


def test_a_grey_jpeg_counts_as_grey_and_a_colour_photo_keeps_its_colours(
    astronaut: np.ndarray, landmarks: np.ndarray
) -> None:
    grey = np.repeat(np.asarray(Image.fromarray(astronaut).convert("L"))[..., None], 3, axis=-1)
    noisy = np.clip(grey.astype(int) + np.random.default_rng(0).integers(-1, 2, grey.shape), 0, 255)
    assert is_grey(noisy.astype(np.uint8)) and not is_grey(astronaut) and not is_grey(grey[:0])
    aligned = align_face(astronaut, landmarks, 64)
    colour_face = aligned.crop[::-1].copy()
    out = paste_back(astronaut, aligned, colour_face, mask_scale=1.3)
    replaced = face_mask(aligned, astronaut.shape, 1.3) == 1
    spread = out[replaced].max(axis=-1).astype(int) - out[replaced].min(axis=-1)
    assert spread.mean() > 20  # still a colour face
    np.testing.assert_array_equal(to_grey(np.array([[10.0, 10.0, 10.0]])), [[10.0, 10.0, 10.0]])
