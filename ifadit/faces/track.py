"""Face tracker: gives every detected face a stable integer track id across the frames of a video.

Each frame's faces are matched to live tracks by one optimal assignment (scipy's Hungarian solver) on
box overlap (IoU against each track's constant-velocity prediction) and, when identity embeddings are
given, their distance (L2 or cosine, the recognizer's metric) to the track's running mean embedding. A pair may match when the boxes overlap
enough OR the identities agree, so a track survives pose changes (overlap) and short occlusions or
crossings (identity). Unmatched tracks live on for `max_age` frames; unmatched faces open new tracks.
Ids count up from 0 and are never reused. Pure logic on `Face` lists: no I/O, no models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ifadit.faces.detect import Face

_NO_MATCH = 1e6  # cost of a forbidden pair in the assignment

Metric = Literal["l2", "cosine"]  # as `Recognizer.metric`: Euclidean distance, or 1 - cosine similarity


@dataclass(frozen=True, eq=False)
class TrackedFace:
    """A detected face with the id of the track it belongs to."""

    track_id: int
    face: Face


@dataclass(eq=False)
class _Track:
    track_id: int
    box: np.ndarray  # [4] last matched (x0, y0, x1, y1)
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))  # [4] box change per frame
    embedding: np.ndarray | None = None  # [D] running mean identity (unit norm for the cosine metric)
    missed: int = 0  # frames since the last match

    def predicted_box(self) -> np.ndarray:
        return self.box + self.velocity * (self.missed + 1)


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Intersection over union of every pair: [A, 4] x [B, 4] boxes (x0, y0, x1, y1) -> [A, B]."""
    x0 = np.maximum(boxes_a[:, None, 0], boxes_b[None, :, 0])
    y0 = np.maximum(boxes_a[:, None, 1], boxes_b[None, :, 1])
    x1 = np.minimum(boxes_a[:, None, 2], boxes_b[None, :, 2])
    y1 = np.minimum(boxes_a[:, None, 3], boxes_b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (boxes_a[:, 2] - boxes_a[:, 0]) * (boxes_a[:, 3] - boxes_a[:, 1])
    area_b = (boxes_b[:, 2] - boxes_b[:, 0]) * (boxes_b[:, 3] - boxes_b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


class FaceTracker:
    """Stateful tracker: call `update` once per frame, in order."""

    def __init__(
        self,
        *,
        iou_threshold: float = 0.3,  # boxes overlapping at least this much may belong to one track
        max_age: int = 5,  # frames a track survives without a match before its id retires
        metric: Metric = "l2",  # embedding distance: the recognizer's own metric
        # distance under which two embeddings are one identity: the recognizer's threshold (default: dlib's
        # 128-D descriptor, L2 0.6, well between its one-person and other-person distances)
        max_embedding_distance: float = 0.6,
        embedding_weight: float = 0.5,  # share of identity (vs overlap) in the matching cost, 0..1
        embedding_momentum: float = 0.7,  # weight of a track's past in its running mean embedding
        velocity_momentum: float = 0.5,  # weight of a track's past in its smoothed box velocity
    ) -> None:
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
        if metric not in ("l2", "cosine"):
            raise ValueError(f"metric must be 'l2' or 'cosine', got {metric!r}")
        if max_embedding_distance <= 0:
            raise ValueError(f"max_embedding_distance must be > 0, got {max_embedding_distance}")
        if max_age < 0:
            raise ValueError(f"max_age must be >= 0, got {max_age}")
        for name, value in (
            ("embedding_weight", embedding_weight),
            ("embedding_momentum", embedding_momentum),
            ("velocity_momentum", velocity_momentum),
        ):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        self.iou_threshold = iou_threshold
        self.max_age = max_age
        self.metric = metric
        self.max_embedding_distance = max_embedding_distance
        self.embedding_weight = embedding_weight
        self.embedding_momentum = embedding_momentum
        self.velocity_momentum = velocity_momentum
        self._tracks: list[_Track] = []
        self._next_id = 0

    @property
    def live_track_ids(self) -> list[int]:
        """Ids of the tracks that can still be matched (seen within the last `max_age` frames)."""
        return [track.track_id for track in self._tracks]

    def update(self, faces: Sequence[Face], embeddings: np.ndarray | None = None) -> list[TrackedFace]:
        """Assign track ids to one frame's faces; `embeddings` is [N, D], one row per face, or None.

        Returns one `TrackedFace` per input face, in the input order.
        """
        boxes = np.array([face.box for face in faces], dtype=np.float64).reshape(-1, 4)
        if embeddings is not None:
            embeddings = np.asarray(embeddings, dtype=np.float64)
            if embeddings.ndim != 2 or embeddings.shape[0] != len(faces):
                raise ValueError(f"embeddings must be [{len(faces)}, D], got {embeddings.shape}")
            if self.metric == "cosine":
                embeddings = _unit(embeddings)
        matches = self._match(boxes, embeddings)
        ids: list[int] = []
        matched_tracks = set()
        for index in range(len(faces)):
            embedding = embeddings[index] if embeddings is not None else None
            track = matches.get(index)
            if track is None:
                track = _Track(self._next_id, boxes[index].copy(), embedding=embedding)
                self._next_id += 1
                self._tracks.append(track)
            else:
                self._advance(track, boxes[index], embedding)
            matched_tracks.add(id(track))
            ids.append(track.track_id)
        for track in self._tracks:
            if id(track) not in matched_tracks:
                track.missed += 1
        self._tracks = [track for track in self._tracks if track.missed <= self.max_age]
        return [TrackedFace(track_id, face) for track_id, face in zip(ids, faces, strict=True)]

    def _match(self, boxes: np.ndarray, embeddings: np.ndarray | None) -> dict[int, _Track]:
        if not self._tracks or not len(boxes):
            return {}
        predicted = np.stack([track.predicted_box() for track in self._tracks])
        iou = box_iou(predicted, boxes)  # [T, N]
        allowed = iou >= self.iou_threshold
        cost = 1.0 - iou
        if embeddings is not None:
            has_embedding = np.array([track.embedding is not None for track in self._tracks])
            track_embeddings = np.stack(
                [
                    t.embedding if t.embedding is not None else np.zeros(embeddings.shape[1])
                    for t in self._tracks
                ]
            )
            if self.metric == "cosine":
                distance = 1.0 - track_embeddings @ embeddings.T  # [T, N]
            else:
                distance = np.linalg.norm(track_embeddings[:, None] - embeddings[None], axis=-1)
            same_identity = has_embedding[:, None] & (distance <= self.max_embedding_distance)
            allowed |= same_identity
            # identity cost: 0 for equal embeddings, 0.5 at the threshold, 1 from twice the threshold on
            identity_cost = np.clip(distance / (2 * self.max_embedding_distance), 0.0, 1.0)
            weight = self.embedding_weight
            cost = np.where(has_embedding[:, None], (1 - weight) * cost + weight * identity_cost, cost)
        cost = np.where(allowed, cost, _NO_MATCH)
        from scipy.optimize import linear_sum_assignment  # 0.4 s to import: only when tracking video

        rows, cols = linear_sum_assignment(cost)
        return {int(c): self._tracks[r] for r, c in zip(rows, cols, strict=True) if allowed[r, c]}

    def _advance(self, track: _Track, box: np.ndarray, embedding: np.ndarray | None) -> None:
        step = (box - track.box) / (track.missed + 1)
        track.velocity = self.velocity_momentum * track.velocity + (1 - self.velocity_momentum) * step
        track.box = box.copy()
        track.missed = 0
        if embedding is not None:
            if track.embedding is None:
                track.embedding = embedding
            else:
                mean = self.embedding_momentum * track.embedding + (1 - self.embedding_momentum) * embedding
                track.embedding = _unit(mean) if self.metric == "cosine" else mean
