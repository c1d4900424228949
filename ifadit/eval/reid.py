"""Re-identification sets (`<root>/<identity>/<image>`) read as canonical face crops with identity labels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ifadit.faces.align import align_face
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


def load_reid_set(
    root: Path, size: int = 150, upsample: int | None = None, limit: int | None = None
) -> ReidSet:
    """Detect (dlib HOG), 5-point align and crop the images under `root` (`<identity>/<image>`).

    `upsample`: HOG doublings, default `SET_UPSAMPLE[root.name]` or 1. `limit`: use only this many images,
    spread evenly over the sorted list (a quick subset).
    """
    upsample = SET_UPSAMPLE.get(root.name, 1) if upsample is None else upsample
    images = sorted(p for p in root.glob("*/*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if limit is not None and limit < len(images):
        images = [images[i * len(images) // limit] for i in range(limit)]
    crops, labels, paths, missed = [], [], [], []
    for path in images:
        image = read_image(path)
        height, width = image.shape[:2]
        shrink = min(1.0, DETECT_MAX_SIDE / max(height, width))
        scale = None if shrink == 1.0 else (round(width * shrink), round(height * shrink))
        faces = get_detector("hog", upsample=upsample, scale=scale).detect(image)
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
