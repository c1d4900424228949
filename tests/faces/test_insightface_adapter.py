"""ifadit.faces.insightface_adapter: plumbing checked with small ONNX models exported inside the test.

Real insightface packs cannot be downloaded here, so the models are stand-ins with the packs' input and
output layouts: a seeded conv net with ArcFace's [N,3,112,112] -> [N,512] shape, a channel-mean probe, and
SCRFD-layout detectors whose outputs are fixed tensors placing faces at known anchors.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import dlib
import numpy as np
import pytest
import torch

from ifadit.errors import ModelError
from ifadit.faces.align import CANONICAL_PADDING, align_face
from ifadit.faces.detect import get_detector, model_path
from ifadit.faces.insightface_adapter import (
    ARCFACE_TEMPLATE,
    KEYPOINTS_TEMPLATE,
    ArcFaceRecognizer,
    InsightFaceDetector,
    canonical_to_arcface,
    find_pack,
    load_pack,
    similarity_matrix,
)
from ifadit.media.image import read_image

onnx = pytest.importorskip("onnx", reason="the [insightface] extra (onnx, onnxruntime) is not installed")
# torch's default (dynamo) exporter needs onnxscript; the TorchScript one needs only onnx and warns it is legacy
pytestmark = pytest.mark.filterwarnings(
    "ignore:You are using the legacy TorchScript-based ONNX export:DeprecationWarning",
    "ignore:The feature will be removed:DeprecationWarning",
)
pytest.importorskip("onnxruntime", reason="the [insightface] extra (onnx, onnxruntime) is not installed")

DET_SIZE = 160  # fixed detector input, W = H
STRIDES = (8, 16, 32)
ANCHORS = 2


def _export(
    module: torch.nn.Module, shape: tuple[int, ...], path: Path, outputs: int = 1, dynamic: bool = True
) -> Path:
    torch.manual_seed(0)
    names = [f"out{i}" for i in range(outputs)]
    axes = {"input.1": {0: "n"}, **{name: {0: "n"} for name in names}} if dynamic else None
    torch.onnx.export(
        module.eval(),
        (torch.zeros(shape),),
        str(path),
        dynamo=False,
        input_names=["input.1"],
        output_names=names,
        dynamic_axes=axes,
    )
    return path


class _TinyArcFace(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 5, stride=4, padding=2)  # 112 -> 28
        self.fc = torch.nn.Linear(8 * 4 * 4, 512)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.nn.functional.avg_pool2d(torch.relu(self.conv(img)), 7).flatten(1))  # 28 -> 4


class _ChannelMeans(torch.nn.Module):
    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return img.mean(dim=(2, 3))


class _Constant(torch.nn.Module):
    """Returns fixed tensors (as an SCRFD graph would for one particular image); input only keeps them live."""

    def __init__(self, tensors: list[np.ndarray]) -> None:
        super().__init__()
        for index, tensor in enumerate(tensors):
            self.register_buffer(f"t{index}", torch.from_numpy(tensor))
        self.count = len(tensors)

    def forward(self, img: torch.Tensor) -> tuple[torch.Tensor, ...]:
        zero = img.sum() * 0
        return tuple(getattr(self, f"t{index}") + zero for index in range(self.count))


# One face: stride 16, location (row 5, col 6), anchor 0 -> centre (96, 80) in the detector's input.
FACE_CENTRE = np.array([96.0, 80.0])
FACE_DIST = np.array([2.0, 2.5, 2.0, 2.5])  # left, top, right, bottom in strides
FACE_KPS = np.array([[-1.0, -1.0], [1.0, -1.0], [0.0, 0.2], [-0.8, 1.2], [0.8, 1.2]])  # offsets in strides


def _scrfd_outputs(keypoints: bool, batched: bool) -> list[np.ndarray]:
    sizes = [(DET_SIZE // s) ** 2 * ANCHORS for s in STRIDES]
    scores = [np.zeros((n, 1), np.float32) for n in sizes]
    boxes = [np.zeros((n, 4), np.float32) for n in sizes]
    kps = [np.zeros((n, 10), np.float32) for n in sizes]
    face = (5 * (DET_SIZE // 16) + 6) * ANCHORS + 0
    scores[1][face], boxes[1][face], kps[1][face] = 0.9, FACE_DIST, FACE_KPS.reshape(-1)
    duplicate = (10 * (DET_SIZE // 8) + 12) * ANCHORS + 1  # same centre at stride 8, same box: suppressed
    scores[0][duplicate], boxes[0][duplicate] = 0.7, FACE_DIST * 2
    second = (1 * (DET_SIZE // 32) + 1) * ANCHORS + 1  # centre (32, 32), 16 px either side
    scores[2][second], boxes[2][second] = 0.8, [0.5, 0.5, 0.5, 0.5]
    weak = (4 * (DET_SIZE // 32) + 4) * ANCHORS + 0  # below the 0.5 threshold
    scores[2][weak], boxes[2][weak] = 0.3, [0.5, 0.5, 0.5, 0.5]
    tensors = scores + boxes + (kps if keypoints else [])
    return [t[None] for t in tensors] if batched else tensors


def _scrfd(path: Path, keypoints: bool = True, batched: bool = True) -> Path:
    tensors = _scrfd_outputs(keypoints, batched)
    return _export(_Constant(tensors), (1, 3, DET_SIZE, DET_SIZE), path, outputs=len(tensors), dynamic=False)


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pack like buffalo_l: detector, recognizer, and an attribute model (96 px) that must be skipped."""
    folder = tmp_path_factory.mktemp("pack")
    _scrfd(folder / "det_10g.onnx")
    _export(_TinyArcFace(), (1, 3, 112, 112), folder / "w600k_r50.onnx")
    _export(_ChannelMeans(), (1, 3, 96, 96), folder / "genderage.onnx")
    return folder


# --- pack selection -------------------------------------------------------------------------------------


def test_find_pack_picks_models_by_their_inputs_and_outputs(pack: Path) -> None:
    found = find_pack(pack)
    assert (found.detector.name, found.recognizer.name) == ("det_10g.onnx", "w600k_r50.onnx")


def test_find_pack_takes_named_files_and_refuses_wrong_roles(pack: Path) -> None:
    assert find_pack(pack, recognizer="w600k_r50.onnx").recognizer == pack / "w600k_r50.onnx"
    with pytest.raises(ModelError, match="is not an insightface recognizer"):
        find_pack(pack, recognizer="genderage.onnx")
    with pytest.raises(ModelError, match="model file not found"):
        find_pack(pack, detector="absent.onnx")


def test_find_pack_reports_ambiguous_missing_and_broken_packs(pack: Path, tmp_path: Path) -> None:
    two = tmp_path / "two"
    two.mkdir()
    for name in ("det_10g.onnx", "w600k_r50.onnx"):
        (two / name).write_bytes((pack / name).read_bytes())
    (two / "glintr100.onnx").write_bytes((pack / "w600k_r50.onnx").read_bytes())
    with pytest.raises(ModelError, match=r"several recognizer models \(glintr100.onnx, w600k_r50.onnx\)"):
        find_pack(two)
    assert find_pack(two, recognizer="glintr100.onnx").recognizer.name == "glintr100.onnx"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="no detector model"):
        find_pack(empty)
    with pytest.raises(ModelError, match="model-pack folder not found"):
        find_pack(tmp_path / "absent")
    (empty / "broken.onnx").write_bytes(b"not a protobuf")
    with pytest.raises(ModelError, match="broken.onnx: not a loadable ONNX model"):
        find_pack(empty)


# --- ArcFace recognizer ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def astronaut_crop(astronaut: np.ndarray) -> np.ndarray:
    face = get_detector("hog").detect(astronaut)[0]
    return align_face(astronaut, face.landmarks, size=150).crop


def test_arcface_embeddings_match_the_network_on_arcface_aligned_input(
    pack: Path, astronaut_crop: np.ndarray
) -> None:
    _, recognizer = load_pack(pack)
    crops = np.stack([astronaut_crop] * 3)
    embeddings = recognizer.embed(crops)
    assert embeddings.shape == (3, 512) and embeddings.dtype == np.float32
    assert (recognizer.name, recognizer.metric, recognizer.dim) == ("arcface", "cosine", 512)
    aligned = cv2.warpAffine(
        astronaut_crop, canonical_to_arcface(150), (112, 112), borderMode=cv2.BORDER_REPLICATE
    )
    img = (
        torch.from_numpy(aligned).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    )  # insightface: (x - 127.5) / 127.5
    with torch.no_grad():
        expected = _TinyArcFace()(img).numpy()
    np.testing.assert_allclose(embeddings, np.repeat(expected, 3, axis=0), rtol=1e-4, atol=1e-5)
    assert recognizer.same_person(embeddings[0], embeddings[1]) and not recognizer.same_person(
        embeddings[0], -embeddings[1]
    )


def test_arcface_input_is_rgb_scaled_to_minus_one_one(tmp_path: Path) -> None:
    recognizer = ArcFaceRecognizer(_export(_ChannelMeans(), (1, 3, 112, 112), tmp_path / "means.onnx"))
    red = np.zeros((2, 150, 150, 3), np.uint8)
    red[..., 0] = 255
    np.testing.assert_allclose(recognizer.embed(red), [[1.0, -1.0, -1.0]] * 2, atol=1e-6)


def test_arcface_with_normalisation_in_the_graph_gets_raw_pixels(tmp_path: Path) -> None:
    """mxnet-exported packs start with Sub and Mul nodes; insightface then feeds raw 0..255 pixels."""
    path = _export(_ChannelMeans(), (1, 3, 112, 112), tmp_path / "mx.onnx")
    model = onnx.load(str(path))
    value = onnx.helper.make_tensor("c", onnx.TensorProto.FLOAT, [], [127.5])
    scale = onnx.helper.make_tensor("s", onnx.TensorProto.FLOAT, [], [1 / 127.5])
    source = model.graph.input[0].name
    for node in model.graph.node:
        node.input[:] = ["scaled" if name == source else name for name in node.input]
    model.graph.initializer.extend([value, scale])
    model.graph.node.insert(0, onnx.helper.make_node("Mul", ["centred", "s"], ["scaled"], name="_mul0"))
    model.graph.node.insert(0, onnx.helper.make_node("Sub", [source, "c"], ["centred"], name="_minus0"))
    onnx.save(model, str(path))
    recognizer = ArcFaceRecognizer(path)
    assert (recognizer.mean, recognizer.std) == (0.0, 1.0)
    grey = np.full((1, 112, 112, 3), 191, np.uint8)
    np.testing.assert_allclose(recognizer.embed(grey), [[(191 - 127.5) / 127.5] * 3], atol=1e-5)


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def test_arcface_crop_agrees_with_insightface_alignment_on_real_faces(
    pack: Path, astronaut: np.ndarray, shared_dir: Path
) -> None:
    """insightface aligns by fitting 5 keypoints onto its template; we go through the canonical crop.

    With keypoints from dlib's 68-point predictor (eye centres, nose tip, mouth corners), both crops put each
    keypoint within 4.5 px of each other (112 px crop) on the astronaut and four reid/deepface photos.
    """
    photos = [astronaut] + [
        read_image(shared_dir / "data" / "reid" / "deepface" / name)
        for name in ("person00/img1.jpg", "person01/img28.jpg", "person02/img51.jpg", "person05/img14.jpg")
    ]
    predictor = dlib.shape_predictor(str(model_path("shape_predictor_68_face_landmarks.dat")))
    _, recognizer = load_pack(pack)
    for photo in photos:
        face = get_detector("hog").detect(photo)[0]
        rect = dlib.rectangle(*(int(round(v)) for v in face.box))
        points = np.array([[p.x, p.y] for p in predictor(photo, rect).parts()], dtype=np.float64)
        keypoints = np.stack(
            [points[36:42].mean(0), points[42:48].mean(0), points[30], points[48], points[54]]
        )
        theirs = _apply(similarity_matrix(keypoints, ARCFACE_TEMPLATE), keypoints)
        for size in (64, 150, 256):
            aligned = align_face(photo, face.landmarks, size=size)
            ours = _apply(canonical_to_arcface(size), aligned.to_crop(keypoints))
            assert np.linalg.norm(ours - theirs, axis=1).max() < 4.5, size
        assert recognizer.arcface_crops(aligned.crop[None]).shape == (1, 112, 112, 3)


def test_canonical_to_arcface_maps_the_mean_face_onto_the_template() -> None:
    in_crop = (CANONICAL_PADDING + KEYPOINTS_TEMPLATE) / (2 * CANONICAL_PADDING + 1) * 150
    mapped = in_crop @ canonical_to_arcface(150)[:, :2].T + canonical_to_arcface(150)[:, 2]
    assert np.linalg.norm(mapped - ARCFACE_TEMPLATE, axis=1).max() < 3.5  # two mean faces, not one


def test_rejects_models_without_arcface_shape(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not an ArcFace recognizer"):
        ArcFaceRecognizer(_export(_ChannelMeans(), (1, 3, 100, 100), tmp_path / "odd.onnx"))


def test_rejects_bad_crops(pack: Path) -> None:
    _, recognizer = load_pack(pack)
    with pytest.raises(ValueError, match="canonical crops"):
        recognizer.embed(np.zeros((1, 64, 48, 3), np.uint8))


# --- SCRFD detector -------------------------------------------------------------------------------------


@pytest.mark.parametrize("batched", [True, False])
def test_scrfd_decoding_scales_suppresses_and_thresholds(tmp_path: Path, batched: bool) -> None:
    detector = InsightFaceDetector(_scrfd(tmp_path / "det.onnx", batched=batched))
    image = np.zeros((240, 320, 3), np.uint8)  # fits the 160 px input at scale 0.5
    faces = detector.detect(image)
    assert [round(f.score, 3) for f in faces] == [0.9, 0.8]  # duplicate suppressed, weak one dropped
    box = np.concatenate([FACE_CENTRE - FACE_DIST[:2] * 16, FACE_CENTRE + FACE_DIST[2:] * 16]) / 0.5
    np.testing.assert_allclose(faces[0].box, np.minimum(box, [320, 240, 320, 240]), atol=1e-4)
    np.testing.assert_allclose(faces[1].box, [32, 32, 96, 96], atol=1e-4)
    # the keypoints sit where the canonical crop expects eye centres, nose tip and mouth corners
    keypoints = (FACE_CENTRE + FACE_KPS * 16) / 0.5
    aligned = align_face(image, faces[0].landmarks, size=150)
    expected = (CANONICAL_PADDING + KEYPOINTS_TEMPLATE) / (2 * CANONICAL_PADDING + 1) * 150
    fitted = aligned.to_crop(keypoints)
    assert (
        np.linalg.norm(fitted - expected, axis=1).max() < 15
    )  # the keypoints are not a mean face; the fit is
    assert (
        np.linalg.norm(fitted.mean(0) - expected.mean(0)) < 1.0
    )  # centred exactly, in the least-squares sense


def test_scrfd_without_keypoints_takes_dlib_landmarks(tmp_path: Path, astronaut: np.ndarray) -> None:
    """A 6-output detector has no keypoints: landmarks come from dlib's 5-point predictor inside its box."""
    detector = InsightFaceDetector(_scrfd(tmp_path / "det.onnx", keypoints=False), thresh=0.85)
    image = cv2.resize(astronaut, (320, 320))[40:280]  # 320x240; the face box of the fixed outputs covers it
    (face,) = detector.detect(image)
    x0, y0, x1, y1 = face.box
    inside = (face.landmarks[:, 0] > x0) & (face.landmarks[:, 0] < x1) & (face.landmarks[:, 1] > y0)
    assert inside.all() and (face.landmarks[:, 1] < y1).all()


def test_rejects_models_that_are_not_detectors(pack: Path) -> None:
    with pytest.raises(ModelError, match="not an SCRFD/RetinaFace detector"):
        InsightFaceDetector(pack / "w600k_r50.onnx")
