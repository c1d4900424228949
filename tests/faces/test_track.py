"""ifadit.faces.track and ifadit.pipeline.track_video: stable ids on box lists and on videos of real faces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ifadit.faces.detect import Face
from ifadit.faces.recognize import Recognizer
from ifadit.faces.registry import get_detector, get_recognizer
from ifadit.faces.track import FaceTracker, box_iou
from ifadit.media.video import VideoWriter
from ifadit.pipeline.track_video import track_video
from tests.video_scenes import FPS, PATCH, Sprite, deepface_patch, face_patch, linear_path, render

_NO_LANDMARKS = np.zeros((5, 2))


def _face(x: float, y: float, side: float = 100.0) -> Face:
    return Face(box=(x, y, x + side, y + side), score=1.0, landmarks=_NO_LANDMARKS)


def _ids(tracker: FaceTracker, faces: list[Face], embeddings: np.ndarray | None = None) -> list[int]:
    return [tracked.track_id for tracked in tracker.update(faces, embeddings)]


# --- pure logic on box lists -------------------------------------------------------------------------


def test_box_iou_known_values() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], dtype=float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], dtype=float)
    np.testing.assert_allclose(box_iou(a, b)[0], [1.0, 50 / 150, 0.0])


def test_moving_face_keeps_one_id_and_output_follows_input_order() -> None:
    tracker = FaceTracker()
    seen = set()
    for step in range(30):
        left, right = _face(10 + 8 * step, 20), _face(500 - 8 * step, 300)
        ids = _ids(tracker, [right, left] if step % 2 else [left, right])
        seen.add(tuple(ids) if step % 2 == 0 else tuple(reversed(ids)))
    assert seen == {(0, 1)}


def test_track_survives_missed_frames_up_to_max_age_then_retires() -> None:
    tracker = FaceTracker(max_age=3)
    assert _ids(tracker, [_face(50, 50)]) == [0]
    for _ in range(3):
        assert _ids(tracker, []) == []
    assert _ids(tracker, [_face(52, 50)]) == [0]  # missed 3 frames: still alive
    for _ in range(4):
        tracker.update([])
    assert tracker.live_track_ids == []
    assert _ids(tracker, [_face(52, 50)]) == [1]  # missed 4 > max_age: a new id, the old one not reused


def test_constant_velocity_prediction_bridges_a_gap() -> None:
    """A face moving 40 px per frame no longer overlaps its last box after a 2-frame gap, only the prediction."""
    tracker = FaceTracker(max_age=5)
    for step in range(5):
        assert _ids(tracker, [_face(40 * step, 0)]) == [0]
    tracker.update([])
    tracker.update([])
    assert _ids(tracker, [_face(40 * 7, 0)]) == [0]


def test_embeddings_decide_when_boxes_swap() -> None:
    """Two faces trade places in one frame: overlap alone follows the places, identity follows the people."""
    a, b = np.eye(4)[0], np.eye(4)[1]
    left, right = _face(0, 0), _face(60, 0)
    plain, keyed = FaceTracker(), FaceTracker()
    assert _ids(plain, [left, right]) == [0, 1]
    assert _ids(keyed, [left, right], np.stack([a, b])) == [0, 1]
    assert _ids(plain, [left, right]) == [0, 1]  # (people swapped: plain cannot know)
    assert _ids(keyed, [left, right], np.stack([b, a])) == [1, 0]


def test_embeddings_reattach_after_occlusion_far_away_but_not_after_max_age() -> None:
    person = np.array([1.0, 0.2, 0.0])
    tracker = FaceTracker(max_age=4)
    assert _ids(tracker, [_face(0, 0)], person[None]) == [0]
    tracker.update([])
    assert _ids(tracker, [_face(400, 300)], person[None]) == [0]  # no overlap, same identity
    for _ in range(5):
        tracker.update([])
    assert _ids(tracker, [_face(400, 300)], person[None]) == [1]


def test_different_identity_at_the_same_place_still_matches_by_overlap() -> None:
    """Overlap OR identity may match: a pose change that moves the embedding must not break the track."""
    tracker = FaceTracker()
    assert _ids(tracker, [_face(0, 0)], np.array([[1.0, 0.0]])) == [0]
    assert _ids(tracker, [_face(3, 0)], np.array([[0.0, 1.0]])) == [0]


def test_cosine_metric_ignores_embedding_length() -> None:
    """Same direction, 3x the length: one identity by cosine, far apart by L2 (boxes do not overlap)."""
    person = np.array([[1.0, 0.2, 0.0]])
    cosine, l2 = FaceTracker(metric="cosine", max_embedding_distance=0.1), FaceTracker()
    for tracker in (cosine, l2):
        assert _ids(tracker, [_face(0, 0)], person) == [0]
    assert _ids(cosine, [_face(400, 300)], 3 * person) == [0]
    assert _ids(l2, [_face(400, 300)], 3 * person) == [1]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"iou_threshold": 0.0},
        {"max_age": -1},
        {"embedding_weight": 1.5},
        {"max_embedding_distance": 0.0},
        {"metric": "manhattan"},
    ],
)
def test_rejects_invalid_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        FaceTracker(**kwargs)  # type: ignore[arg-type]


def test_rejects_embeddings_that_do_not_match_the_faces() -> None:
    with pytest.raises(ValueError, match=r"embeddings must be \[2, D\]"):
        FaceTracker().update([_face(0, 0), _face(200, 0)], np.ones((3, 8)))


# --- videos of real faces -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dlib_recognizer() -> Recognizer:
    """dlib's 128-D descriptor (the reference recognizer; the tracker takes its L2 metric and threshold)."""
    return get_recognizer("dlib")


@pytest.fixture(scope="module")
def patches(astronaut: np.ndarray, shared_dir: Path) -> dict[str, np.ndarray]:
    return {"astronaut": face_patch(astronaut), "person01": deepface_patch(shared_dir, "person01/img28.jpg")}


def _track(
    tmp_path: Path, sprites: list[Sprite], frames: int, recognizer: Recognizer | None = None, **options: float
):
    path = tmp_path / "scene.mp4"
    with VideoWriter(path, fps=FPS) as writer:
        for image in render(sprites, frames):
            writer.write(image)
    tracker = None  # track_video's default: FaceTracker() with the recognizer's metric and threshold
    if options:
        if recognizer is not None:
            options = {"max_embedding_distance": recognizer.threshold, **options}
        tracker = FaceTracker(metric=recognizer.metric if recognizer else "l2", **options)  # type: ignore[arg-type]
    detector = get_detector("hog")
    return [faces for _, faces in track_video(path, detector, recognizer=recognizer, tracker=tracker)]


def _owner(face: Face, sprites: list[Sprite], index: int) -> int:
    """Which sprite a detection belongs to: the visible one whose patch centre is nearest to the box centre."""
    cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
    distances = [
        np.hypot(cx - p[0] - PATCH / 2, cy - p[1] - PATCH / 2) if (p := s.positions[index]) else np.inf
        for s in sprites
    ]
    return int(np.argmin(distances))


def test_one_face_crossing_the_frame_keeps_one_id(tmp_path: Path, patches: dict[str, np.ndarray]) -> None:
    frames = 30  # 3 s at 10 fps
    sprite = Sprite(patches["astronaut"], linear_path((0, 20), (190, 100), frames))
    tracked = _track(tmp_path, [sprite], frames)
    assert len(tracked) == frames
    assert sum(len(faces) == 1 for faces in tracked) >= 0.9 * frames
    assert {face.track_id for faces in tracked for face in faces} == {0}


def test_crossing_faces_keep_their_ids_with_embeddings(
    tmp_path: Path, patches: dict[str, np.ndarray], dlib_recognizer
) -> None:
    frames = 30
    sprites = [
        Sprite(patches["astronaut"], linear_path((0, 10), (190, 10), frames)),
        Sprite(patches["person01"], linear_path((190, 90), (0, 90), frames)),  # drawn on top while crossing
    ]
    tracked = _track(tmp_path, sprites, frames, recognizer=dlib_recognizer)
    ids_of: dict[int, set[int]] = {0: set(), 1: set()}
    for index, faces in enumerate(tracked):
        for face in faces:
            ids_of[_owner(face.face, sprites, index)].add(face.track_id)
    counts = [
        sum(_owner(f.face, sprites, i) == who for i, fs in enumerate(tracked) for f in fs) for who in (0, 1)
    ]
    assert min(counts) >= 0.7 * frames  # both faces were seen through most of the crossing
    assert len(ids_of[0]) == 1 and len(ids_of[1]) == 1 and ids_of[0] != ids_of[1]


@pytest.mark.parametrize("with_embeddings", [False, True])
def test_face_returning_after_max_age_gets_a_new_id(
    tmp_path: Path, patches: dict[str, np.ndarray], dlib_recognizer, with_embeddings: bool
) -> None:
    """Visible 10 frames, gone 10 (max_age 5), back 10: two tracks, each stable, never sharing an id."""
    frames = 30
    path = linear_path((0, 50), (180, 50), frames)
    positions = [p if not 10 <= i < 20 else None for i, p in enumerate(path)]
    tracked = _track(
        tmp_path,
        [Sprite(patches["astronaut"], positions)],
        frames,
        recognizer=dlib_recognizer if with_embeddings else None,
        max_age=5,
    )
    first = {f.track_id for faces in tracked[:10] for f in faces}
    gone = [f for faces in tracked[10:20] for f in faces]
    second = {f.track_id for faces in tracked[20:] for f in faces}
    assert gone == []
    assert len(first) == 1 and len(second) == 1 and first != second


def test_face_returning_within_max_age_far_away_keeps_its_id_by_identity(
    tmp_path: Path, patches: dict[str, np.ndarray], dlib_recognizer
) -> None:
    frames = 20
    positions: list[tuple[int, int] | None] = (
        [(0, 20)] * 8 + [None] * 3 + [(190, 100)] * 9
    )  # jumps, no overlap
    tracked = _track(
        tmp_path, [Sprite(patches["astronaut"], positions)], frames, recognizer=dlib_recognizer, max_age=5
    )
    assert {f.track_id for faces in tracked for f in faces} == {0}


def test_face_hidden_behind_another_and_turning_back_keeps_its_id_only_with_embeddings(
    tmp_path: Path, patches: dict[str, np.ndarray], dlib_recognizer: Recognizer
) -> None:
    """Two people meet, one hides behind the other for 1.4 s, both walk back the way they came.

    Overlap alone predicts the hidden face further along its old path and opens a new track when it
    reappears; its identity embedding re-attaches it to its old track (max_age covers the occlusion).
    """
    frames = 30

    def there_and_back(start: tuple[int, int], end: tuple[int, int]) -> list[tuple[int, int] | None]:
        half = linear_path(start, end, frames // 2)
        return half + half[::-1]

    sprites = [
        Sprite(patches["astronaut"], there_and_back((0, 20), (120, 20))),
        Sprite(patches["person01"], there_and_back((190, 60), (70, 60))),  # drawn on top
    ]
    ids_of = {}
    for recognizer in (None, dlib_recognizer):
        tracked = _track(tmp_path, sprites, frames, recognizer=recognizer, max_age=20)
        hidden = [i for i, faces in enumerate(tracked) if all(_owner(f.face, sprites, i) != 0 for f in faces)]
        assert len(hidden) >= 10  # the astronaut really disappears for a while
        ids_of[recognizer is not None] = [
            {
                f.track_id
                for i, fs in enumerate(tracked)
                for f in fs
                if _owner(f.face, sprites, i) == who and i in part
            }
            for who in (0, 1)
            for part in (range(hidden[0]), range(hidden[-1] + 1, frames))
        ]
    before_a, after_a, before_b, after_b = ids_of[True]
    assert before_a == after_a and before_b == after_b and len(before_a | before_b) == 2
    assert ids_of[False][0] != ids_of[False][1]  # without identity the returning face got a new id
