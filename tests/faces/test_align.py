"""ifadit.faces.align reproduces dlib's face chips (padding 0.25) and carries a usable image->crop map."""

from __future__ import annotations

from pathlib import Path

import cv2
import dlib
import numpy as np
import pytest

from ifadit.faces.align import CANONICAL_PADDING, align_face, apply_affine, invert_affine, template_points
from ifadit.faces.detect import DlibHogDetector, _shape_predictor
from ifadit.media.image import read_image

SIZES = (64, 128, 150, 256)


def reid_images(shared_dir: Path) -> list[np.ndarray]:
    root = shared_dir / "data/reid"
    paths = [
        *sorted((root / "deepface").glob("*/*.jpg"))[::12],
        *sorted((root / "orl").glob("s1*/1.pgm")),
        *sorted((root / "dlib-johns").glob("*/*.jpg"))[::20],
    ]
    return [read_image(path) for path in paths]


def dlib_shape(image: np.ndarray) -> tuple[np.ndarray, dlib.full_object_detection]:
    """Landmarks from ifadit's detector, and dlib's own detection + shape for the reference chip."""
    landmarks = DlibHogDetector().detect(image)[0].landmarks
    shape = _shape_predictor()(image, dlib.get_frontal_face_detector()(image, 0)[0])
    np.testing.assert_array_equal(landmarks, [[p.x, p.y] for p in shape.parts()])  # same recipe as dlib's
    return landmarks, shape


@pytest.mark.parametrize("size", SIZES)
def test_matches_dlib_get_face_chip_on_astronaut(astronaut: np.ndarray, size: int) -> None:
    landmarks, shape = dlib_shape(astronaut)
    reference = dlib.get_face_chip(astronaut, shape, size, CANONICAL_PADDING)
    aligned = align_face(astronaut, landmarks, size)
    assert aligned.crop.shape == (size, size, 3) and aligned.crop.dtype == np.uint8
    assert aligned.size == size and aligned.padding == CANONICAL_PADDING
    np.testing.assert_array_equal(aligned.crop, reference)


def test_matches_dlib_get_face_chip_on_reid(shared_dir: Path) -> None:
    images = reid_images(shared_dir)
    assert len(images) >= 8
    for image in images:
        landmarks, shape = dlib_shape(image)
        for size in SIZES:
            reference = dlib.get_face_chip(image, shape, size, CANONICAL_PADDING)
            diff = np.abs(align_face(image, landmarks, size).crop.astype(int) - reference).mean()
            assert diff < 2.0, f"{image.shape} at {size}: mean difference {diff:.2f}"


def test_matches_the_training_crop_recipe(shared_dir: Path) -> None:
    """The recipe of cache/celeba-*-64.npz (HOG upsample 1, 5 points, get_face_chip 64 px, padding 0.25)."""
    path = sorted((shared_dir / "data/celeba-crops/validation").glob("*.png"))[0]
    image = read_image(path)
    detections = dlib.get_frontal_face_detector()(image, 1)
    shape = _shape_predictor()(image, detections[0])
    landmarks = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
    np.testing.assert_array_equal(
        align_face(image, landmarks, 64).crop, dlib.get_face_chip(image, shape, 64, 0.25)
    )


@pytest.mark.parametrize("size", (150, 256))
def test_matrix_describes_the_crop(astronaut: np.ndarray, size: int) -> None:
    """Warping the image with `matrix` in OpenCV gives the crop again, up to interpolation."""
    landmarks, _ = dlib_shape(astronaut)
    aligned = align_face(astronaut, landmarks, size)
    warped = cv2.warpAffine(astronaut, aligned.matrix, (size, size), flags=cv2.INTER_LINEAR)
    assert np.abs(warped.astype(int) - aligned.crop).mean() < 2.0


def test_landmarks_land_on_the_template(astronaut: np.ndarray) -> None:
    landmarks, _ = dlib_shape(astronaut)
    for size in SIZES:
        aligned = align_face(astronaut, landmarks, size)
        residual = np.abs(aligned.to_crop(landmarks) - template_points(size)).max()
        assert residual < 0.03 * size  # least-squares similarity fit: small residual, not zero
        np.testing.assert_allclose(aligned.to_image(aligned.to_crop(landmarks)), landmarks, atol=1e-9)


def test_sub_pixel_landmarks_follow_the_image(astronaut: np.ndarray) -> None:
    """Shifting image and landmarks together leaves the crop unchanged; float landmarks are honoured."""
    landmarks, _ = dlib_shape(astronaut)
    shifted = np.zeros_like(astronaut)
    shifted[:, 7:] = astronaut[:, :-7]
    a = align_face(astronaut, landmarks, 128)
    b = align_face(shifted, landmarks + [7.0, 0.0], 128)
    np.testing.assert_array_equal(a.crop, b.crop)
    c = align_face(astronaut, landmarks + 0.5, 128)
    assert not np.array_equal(a.crop, c.crop)
    np.testing.assert_allclose(c.matrix[:, 2] - a.matrix[:, 2], -a.matrix[:, :2] @ [0.5, 0.5], atol=1e-9)


def test_face_at_the_border_fills_black(astronaut: np.ndarray) -> None:
    landmarks, _ = dlib_shape(astronaut)
    cut = np.ascontiguousarray(astronaut[:, 200:])
    aligned = align_face(cut, landmarks - [200.0, 0.0], 64)
    assert (aligned.crop[:, :5] == 0).all()  # left of the image edge: dlib's zero fill
    assert aligned.crop[:, 40:].mean() > 50


def test_affine_helpers_round_trip() -> None:
    matrix = np.array([[0.8, -0.3, 12.0], [0.25, 0.9, -4.0]])
    points = np.random.default_rng(0).uniform(-100, 100, (10, 2))
    np.testing.assert_allclose(apply_affine(invert_affine(matrix), apply_affine(matrix, points)), points)


def test_rejects_bad_arguments(astronaut: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"shape \(5, 2\)"):
        align_face(astronaut, np.zeros((68, 2)))
    with pytest.raises(ValueError, match="size >= 1"):
        align_face(astronaut, np.ones((5, 2)), size=0)
    with pytest.raises(ValueError, match="RGB uint8"):
        align_face(astronaut[..., 0], np.ones((5, 2)))
