"""Re-identification sets (`<root>/<identity>/<image>`) read as canonical face crops with identity labels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ifadit.faces.align import align_face
from ifadit.faces.detect import Face
from ifadit.faces.registry import get_detector
from ifadit.media.image import read_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".pgm", ".webp")
# HOG upsampling that finds every face (or nearly: ORL 394/400) in the shared sets: the deepface photos are
# large, the ORL images are 92x112 px.
SET_UPSAMPLE = {"deepface": 0, "orl": 2, "dlib-johns": 1}
DETECT_MAX_SIDE = (
    1024  # px: larger photos are shrunk for detection only; landmarks and crops use full resolution
)


@dataclass(frozen=True)
class ReidSet:
    """Canonical crops of one set, one per image whose face was found (the largest when several)."""

    crops: np.ndarray  # [N,S,S,3] uint8 RGB, dlib chip geometry with padding 0.25
    labels: list[str]  # identity (folder name) of each crop
    paths: list[Path]  # source image of each crop
    missed: list[Path]  # images in which no face was found


def set_upsample(root: Path) -> int:
    """HOG doublings for the set in `root`: `SET_UPSAMPLE[root.name]`, else 1."""
    return SET_UPSAMPLE.get(root.name, 1)


def spread(paths: list[Path], count: int | None) -> list[Path]:
    """`count` of `paths` spread evenly over the list (all of them when `count` is None or not smaller)."""
    if count is None or count >= len(paths):
        return paths
    return [paths[i * len(paths) // count] for i in range(count)]


def set_images(root: Path) -> list[Path]:
    """The images of a folder-per-identity set (`<root>/<identity>/<image>`), sorted."""
    return sorted(p for p in root.glob("*/*") if p.suffix.lower() in IMAGE_SUFFIXES)


def detect_faces(image: np.ndarray, upsample: int) -> list[Face]:
    """dlib HOG faces of `image`, detected on a copy shrunk to `DETECT_MAX_SIDE` (landmarks in full size)."""
    height, width = image.shape[:2]
    shrink = min(1.0, DETECT_MAX_SIDE / max(height, width))
    scale = None if shrink == 1.0 else (round(width * shrink), round(height * shrink))
    return get_detector("hog", upsample=upsample, scale=scale).detect(image)


def load_reid_set(
    root: Path, size: int = 150, upsample: int | None = None, limit: int | None = None
) -> ReidSet:
    """Detect (dlib HOG), 5-point align and crop the images under `root` (`<identity>/<image>`).

    `upsample`: HOG doublings, default `SET_UPSAMPLE[root.name]` or 1. `limit`: use only this many images,
    spread evenly over the sorted list (a quick subset).
    """
    upsample = set_upsample(root) if upsample is None else upsample
    crops, labels, paths, missed = [], [], [], []
    for path in spread(set_images(root), limit):
        image = read_image(path)
        faces = detect_faces(image, upsample)
        if not faces:
            missed.append(path)
            continue
        face = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
        crops.append(align_face(image, face.landmarks, size=size).crop)
        labels.append(path.parent.name)
        paths.append(path)
    if not crops:
        raise ValueError(f"{root}: no face found in any image")
    return ReidSet(np.stack(crops), labels, paths, missed)
