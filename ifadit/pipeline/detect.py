"""Detection report for one image file: read safely, detect, optionally write a preview with boxes.

The steps `ifadit detect` runs per file:
  1. read the file (pixel limit, EXIF orientation, grey/RGBA handled; `InputError` on a bad file);
  2. detect faces with 5-point landmarks;
  3. refuse with `NoFaceError` when a face is required and none was found;
  4. write the preview PNG (boxes, landmarks, scores), atomically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ifadit.errors import NoFaceError
from ifadit.faces.detect import Detector, Face
from ifadit.media.files import DEFAULT_MAX_PIXELS
from ifadit.media.image import read_image, write_image

BOX_COLOUR = (0, 255, 0)
LANDMARK_COLOUR = (255, 0, 0)


@dataclass(frozen=True)
class DetectionReport:
    """What was found in one file."""

    path: Path
    width: int
    height: int
    faces: list[Face] = field(default_factory=list)
    preview: Path | None = None  # the preview PNG written, if one was asked for

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "file": str(self.path),
            "width": self.width,
            "height": self.height,
            "faces": [face.as_dict() for face in self.faces],
            "preview": str(self.preview) if self.preview else None,
        }


def draw_faces(image: np.ndarray, faces: list[Face]) -> np.ndarray:
    """A copy of `image` with each face's box, landmarks and score drawn on it."""
    out = np.ascontiguousarray(image.copy())
    thickness = max(1, round(max(image.shape[:2]) / 400))
    for face in faces:
        x0, y0, x1, y1 = (int(round(v)) for v in face.box)
        cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), BOX_COLOUR, thickness)
        for x, y in face.landmarks:
            cv2.circle(out, (int(round(x)), int(round(y))), thickness + 1, LANDMARK_COLOUR, -1)
        label_y = y0 - 4 if y0 > 12 * thickness else y1 + 12 * thickness
        cv2.putText(
            out,
            f"{face.score:.2f}",
            (x0, label_y),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4 * thickness,
            BOX_COLOUR,
            thickness,
        )
    return out


def detect_file(
    path: str | Path,
    detector: Detector,
    *,
    preview_dir: Path | None = None,
    require_face: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> DetectionReport:
    """Run the detection steps on one file; `preview_dir` (created if missing) receives `<file name>.faces.png`."""
    path = Path(path)
    image = read_image(path, max_pixels=max_pixels)  # 1
    faces = detector.detect(image)  # 2
    if require_face and not faces:  # 3
        raise NoFaceError(
            f"{path}: no face found", hint="lower --thresh, raise --upsample or try --detector cnn"
        )
    preview = None
    if preview_dir is not None:  # 4
        Path(preview_dir).mkdir(parents=True, exist_ok=True)
        preview = write_image(Path(preview_dir) / f"{path.name}.faces.png", draw_faces(image, faces))
    return DetectionReport(
        path=path, width=image.shape[1], height=image.shape[0], faces=faces, preview=preview
    )
