"""Detect and track faces through a video: each decoded frame with its faces and their track ids."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from ifadit.faces.detect import Detector, Face
from ifadit.faces.track import FaceTracker, TrackedFace
from ifadit.media.video import TimedFrame, read_timed_frames

# (frame RGB uint8 HxWx3, its faces) -> [N, D] identity embeddings, one row per face
Embedder = Callable[[np.ndarray, Sequence[Face]], np.ndarray]


def track_video(
    path: str | os.PathLike[str],
    detector: Detector,
    *,
    embed: Embedder | None = None,  # identity embeddings make tracks survive crossings; None = overlap only
    tracker: FaceTracker | None = None,  # default FaceTracker(); pass one to tune thresholds
) -> Iterator[tuple[TimedFrame, list[TrackedFace]]]:
    """Yield every frame of `path` in order with its detected faces, each carrying a stable track id.

    Frames are decoded one at a time, so memory stays at one frame whatever the video's length.
    Raises `InputError` (from `read_timed_frames`) when the video is unreadable or corrupted.
    """
    tracker = tracker if tracker is not None else FaceTracker()
    for frame in read_timed_frames(path):
        faces = detector.detect(frame.image)
        embeddings = embed(frame.image, faces) if embed is not None and faces else None
        yield frame, tracker.update(faces, embeddings)
