"""Detect and track faces through a video: each decoded frame with its faces and their track ids."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from ifadit.faces.align import align_face
from ifadit.faces.detect import Detector, Face
from ifadit.faces.track import FaceTracker, TrackedFace
from ifadit.media.video import TimedFrame, read_timed_frames

if TYPE_CHECKING:
    from ifadit.faces.recognize import Recognizer


def embed_faces(recognizer: Recognizer, image: np.ndarray, faces: list[Face], crop_size: int) -> np.ndarray:
    """Identity embeddings [N, D] of `faces` from their canonical crops of `crop_size` pixels."""
    crops = np.stack([align_face(image, face.landmarks, size=crop_size).crop for face in faces])
    return recognizer.embed(crops)


def track_video(
    path: str | os.PathLike[str],
    detector: Detector,
    *,
    recognizer: Recognizer | None = None,  # identities keep tracks through crossings; None = overlap only
    crop_size: int = 150,  # canonical crop side fed to the recognizer (dlib's ResNet reads 150 px)
    tracker: FaceTracker | None = None,  # default: FaceTracker() using the recognizer's metric and threshold
) -> Iterator[tuple[TimedFrame, list[TrackedFace]]]:
    """Yield every frame of `path` in order with its detected faces, each carrying a stable track id.

    Frames are decoded one at a time, so memory stays at one frame whatever the video's length.
    Raises `InputError` (from `read_timed_frames`) when the video is unreadable or corrupted.
    """
    if tracker is None:
        tracker = (
            FaceTracker(metric=recognizer.metric, max_embedding_distance=recognizer.threshold)
            if recognizer is not None
            else FaceTracker()
        )
    for frame in read_timed_frames(path):
        faces = detector.detect(frame.image)
        embeddings = (
            embed_faces(recognizer, frame.image, faces, crop_size)
            if recognizer is not None and faces
            else None
        )
        yield frame, tracker.update(faces, embeddings)
