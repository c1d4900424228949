"""Utility metrics: unchanged crops keep everything, noise keeps nothing, a mirror flips the yaw."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ifadit.eval.utility import angle_error, head_pose, landmark_nme, landmarks68, utility
from tests.recognizer_support import reid_set


@pytest.fixture(scope="module")
def crops(shared_dir: Path) -> np.ndarray:
    return reid_set(shared_dir, "dlib-johns", 8, 128).crops


def test_unchanged_crops_have_perfect_utility(crops: np.ndarray) -> None:
    report = utility(crops, crops.copy(), frechet=0.0)
    assert report.landmark_nme == 0.0 and report.yaw_error == 0.0 and report.pitch_error == 0.0
    assert report.detection_original == report.detection_anonymized == 1.0


def test_a_backend_returning_noise_fails_utility(crops: np.ndarray) -> None:
    noise = np.random.default_rng(0).integers(0, 256, crops.shape, dtype=np.uint8)
    report = utility(crops, noise, frechet=None)
    assert report.detection_anonymized == 0.0 and report.detection_original == 1.0
    assert report.landmark_nme > 0.05


def test_real_faces_face_the_camera_and_a_mirror_negates_the_yaw(crops: np.ndarray) -> None:
    pose = head_pose(landmarks68(crops), crops.shape[1])
    assert np.all(np.abs(pose) < 30)  # the dlib example chips are near-frontal
    mirrored = head_pose(landmarks68(crops[:, :, ::-1].copy()), crops.shape[1])
    assert np.allclose(mirrored[:, 0], -pose[:, 0], atol=3.0)
    assert np.allclose(mirrored[:, 1], pose[:, 1], atol=3.0)


def test_landmark_error_is_normalised_by_the_eye_distance() -> None:
    reference = np.zeros((1, 68, 2))
    reference[0, 45] = (10.0, 0.0)  # outer eye corners 10 px apart
    shifted = reference + np.array([1.0, 0.0])
    assert landmark_nme(reference, shifted)[0] == pytest.approx(0.1)
    assert angle_error(np.array([179.0]), np.array([-179.0]))[0] == pytest.approx(2.0)


def test_shapes_must_match(crops: np.ndarray) -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        utility(crops, crops[:, :64, :64], frechet=None)
