"""Detect and track faces through a video, and hold each face back until its track is confirmed.

`track_video` yields every decoded frame with its detected faces and their track ids. `confirm_tracks`
sits behind it for anonymizing: a single frame's detection is not enough to paste a surrogate over it,
because a face-like object (the astronaut's mission patch in the demo photo) can be boxed, weakly, in
almost every frame of a clip although the still photo shows one face. A track is confirmed once, within
the last `Confirmation.window` frames, it has at least `min_hits` detections whose mean score reaches
`min_score`; confirmation is sticky for the rest of the track. Frames are held back `window - 1` frames
(a look-ahead buffer), so a true face is replaced from its first frame on, retroactively, once its track
confirms within that buffer. Unconfirmed detections are left as they are and counted.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ifadit.faces.align import align_face
from ifadit.faces.detect import Detector, Face
from ifadit.faces.track import FaceTracker, TrackedFace
from ifadit.media.video import TimedFrame, read_timed_frames

if TYPE_CHECKING:
    from ifadit.faces.recognize import Recognizer

# How far above the detector's own threshold a track's mean score must be (`Confirmation.for_detector`).
# hog, measured (docs/results.md): the mission patch scores 0.02-0.11 in encoded frames, the weakest of the
# 61 re-ID faces 0.21, the others 1.0 and up. The other detectors are not measured: no score margin.
SCORE_MARGINS = {"hog": 0.15}


@dataclass(frozen=True)
class Confirmation:
    """When a video track's faces are replaced (see the module docstring)."""

    window: int = 5  # frames: look-ahead buffer and the span `min_hits` is counted over (1: no buffer)
    min_hits: int = 2  # detections the track needs within `window` frames (fewer where the video ends first)
    min_score: float = float("-inf")  # mean detector score those detections need

    def __post_init__(self) -> None:
        if self.window < 1 or not 1 <= self.min_hits <= self.window:
            raise ValueError(
                f"need window >= 1 and 1 <= min_hits <= window, got {self.window}, {self.min_hits}"
            )

    @classmethod
    def for_detector(
        cls, detector: Detector, *, window: int = 5, min_hits: int = 2, min_score: float | None = None
    ) -> Confirmation:
        """The rule for `detector`: `min_score` default its threshold plus its `SCORE_MARGINS` entry."""
        if min_score is None:
            min_score = float(getattr(detector, "thresh", 0.0)) + SCORE_MARGINS.get(detector.name, 0.0)
        return cls(window=window, min_hits=min_hits, min_score=min_score)


@dataclass
class _TrackScores:
    recent: deque[tuple[int, float]] = field(default_factory=deque)  # (frame, score) within the window
    first: int = 0  # frame of the track's first detection
    confirmed: bool = False

    def add(self, frame: int, score: float, rule: Confirmation) -> None:
        self.recent.append((frame, score))
        while self.recent[0][0] <= frame - rule.window:
            self.recent.popleft()
        self.confirmed = self.confirmed or self.passes(rule, rule.min_hits)

    def passes(self, rule: Confirmation, hits: int) -> bool:
        mean = sum(score for _, score in self.recent) / len(self.recent)
        return len(self.recent) >= hits and mean >= rule.min_score


@dataclass(frozen=True)
class ConfirmedFrame:
    """One frame as `confirm_tracks` releases it: the faces to replace and the detections left alone."""

    frame: TimedFrame
    faces: list[TrackedFace]  # confirmed
    unconfirmed: int  # detections whose track was not confirmed in time


def confirm_tracks(
    tracked: Iterable[tuple[TimedFrame, list[TrackedFace]]], rule: Confirmation
) -> Iterator[ConfirmedFrame]:
    """Release `tracked`'s frames in order, `rule.window - 1` frames late, keeping confirmed faces only."""
    scores: dict[int, _TrackScores] = {}
    held: deque[tuple[int, TimedFrame, list[TrackedFace]]] = deque()

    def release(number: int, frame: TimedFrame, faces: list[TrackedFace]) -> ConfirmedFrame:
        kept = [face for face in faces if scores[face.track_id].confirmed]
        return ConfirmedFrame(frame, kept, len(faces) - len(kept))

    number = -1
    for number, (frame, faces) in enumerate(tracked):
        for face in faces:
            scores.setdefault(face.track_id, _TrackScores(first=number)).add(number, face.face.score, rule)
        held.append((number, frame, faces))
        if len(held) >= rule.window:
            yield release(*held.popleft())
    for track in scores.values():  # the video ended: a track cut short needs only the frames it had
        track.confirmed = track.confirmed or track.passes(rule, min(rule.min_hits, number - track.first + 1))
    while held:
        yield release(*held.popleft())


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
