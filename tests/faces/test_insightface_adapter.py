"""ifadit.faces.insightface_adapter: plumbing checked with small ONNX models exported inside the test.

Real insightface packs cannot be downloaded here, so the models are stand-ins with the packs' input and
output layouts (`tests.insightface_support`). Also: selection through the detector and recognizer registries.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import dlib
import numpy as np
import pytest
import torch

from ifadit.errors import BackendUnavailable, ModelError
from ifadit.faces.align import CANONICAL_PADDING, align_face
from ifadit.faces.detect import model_path
from ifadit.faces.insightface_adapter import (
    ARCFACE_TEMPLATE,
    KEYPOINTS_TEMPLATE,
    PACK_ENV,
    ArcFaceRecognizer,
    InsightFaceDetector,
    canonical_to_arcface,
    find_pack,
    load_pack,
    similarity_matrix,
)
from ifadit.faces.registry import get_detector, get_recognizer
from ifadit.media.image import read_image
from tests.insightface_support import (
    EXPORT_WARNINGS,
    FACE_CENTRE,
    FACE_DIST,
    FACE_KPS,
    ChannelMeans,
    TinyArcFace,
    build_pack,
    export,
    scrfd,
)

onnx = pytest.importorskip("onnx", reason="the [insightface] extra (onnx, onnxruntime) is not installed")
pytestmark = pytest.mark.filterwarnings(*EXPORT_WARNINGS)
pytest.importorskip("onnxruntime", reason="the [insightface] extra (onnx, onnxruntime) is not installed")


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pack like buffalo_l: detector, recognizer, and an attribute model (96 px) that must be skipped."""
    return build_pack(tmp_path_factory.mktemp("pack"))


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
    assert (recognizer.name, recognizer.metric, recognizer.dim) == ("insightface", "cosine", 512)
    aligned = cv2.warpAffine(
        astronaut_crop, canonical_to_arcface(150), (112, 112), borderMode=cv2.BORDER_REPLICATE
    )
    img = (
        torch.from_numpy(aligned).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    )  # insightface: (x - 127.5) / 127.5
    with torch.no_grad():
        expected = TinyArcFace()(img).numpy()
    np.testing.assert_allclose(embeddings, np.repeat(expected, 3, axis=0), rtol=1e-4, atol=1e-5)
    assert recognizer.same_person(embeddings[0], embeddings[1]) and not recognizer.same_person(
        embeddings[0], -embeddings[1]
    )


def test_arcface_input_is_rgb_scaled_to_minus_one_one(tmp_path: Path) -> None:
    recognizer = ArcFaceRecognizer(export(ChannelMeans(), (1, 3, 112, 112), tmp_path / "means.onnx"))
    red = np.zeros((2, 150, 150, 3), np.uint8)
    red[..., 0] = 255
    np.testing.assert_allclose(recognizer.embed(red), [[1.0, -1.0, -1.0]] * 2, atol=1e-6)


def test_arcface_with_normalisation_in_the_graph_gets_raw_pixels(tmp_path: Path) -> None:
    """mxnet-exported packs start with Sub and Mul nodes; insightface then feeds raw 0..255 pixels."""
    path = export(ChannelMeans(), (1, 3, 112, 112), tmp_path / "mx.onnx")
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
        ArcFaceRecognizer(export(ChannelMeans(), (1, 3, 100, 100), tmp_path / "odd.onnx"))


def test_rejects_bad_crops(pack: Path) -> None:
    _, recognizer = load_pack(pack)
    with pytest.raises(ValueError, match="canonical crops"):
        recognizer.embed(np.zeros((1, 64, 48, 3), np.uint8))


# --- SCRFD detector -------------------------------------------------------------------------------------


@pytest.mark.parametrize("batched", [True, False])
def test_scrfd_decoding_scales_suppresses_and_thresholds(tmp_path: Path, batched: bool) -> None:
    detector = InsightFaceDetector(scrfd(tmp_path / "det.onnx", batched=batched))
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
    detector = InsightFaceDetector(scrfd(tmp_path / "det.onnx", keypoints=False), thresh=0.85)
    image = cv2.resize(astronaut, (320, 320))[40:280]  # 320x240; the face box of the fixed outputs covers it
    (face,) = detector.detect(image)
    x0, y0, x1, y1 = face.box
    inside = (face.landmarks[:, 0] > x0) & (face.landmarks[:, 0] < x1) & (face.landmarks[:, 1] > y0)
    assert inside.all() and (face.landmarks[:, 1] < y1).all()


def test_rejects_models_that_are_not_detectors(pack: Path) -> None:
    with pytest.raises(ModelError, match="not an SCRFD/RetinaFace detector"):
        InsightFaceDetector(pack / "w600k_r50.onnx")


# --- selection through the registries -------------------------------------------------------------------


def test_registries_build_the_packs_detector_and_recognizer(pack: Path, astronaut_crop: np.ndarray) -> None:
    detector = get_detector("insightface", pack_dir=pack)
    assert isinstance(detector, InsightFaceDetector) and detector.path == pack / "det_10g.onnx"
    image = np.zeros((240, 320, 3), np.uint8)
    assert [round(face.score, 3) for face in detector.detect(image)] == [0.9, 0.8]  # default thresh 0.5
    strict = get_detector("insightface", pack_dir=pack, thresh=0.85, scale=None)  # None: the default
    assert [round(face.score, 3) for face in strict.detect(image)] == [0.9]
    recognizer = get_recognizer("insightface", pack_dir=pack)
    assert isinstance(recognizer, ArcFaceRecognizer) and recognizer.path == pack / "w600k_r50.onnx"
    _, loaded = load_pack(pack)
    np.testing.assert_array_equal(recognizer.embed(astronaut_crop[None]), loaded.embed(astronaut_crop[None]))


def test_pack_folder_defaults_to_the_environment(
    pack: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PACK_ENV, str(pack))
    assert get_detector("insightface").path == pack / "det_10g.onnx"
    assert get_recognizer("insightface").path == pack / "w600k_r50.onnx"
    monkeypatch.setenv(PACK_ENV, str(tmp_path / "elsewhere"))
    assert get_detector("insightface", pack_dir=pack).path == pack / "det_10g.onnx"  # pack_dir wins
    with pytest.raises(ModelError, match="elsewhere: model-pack folder not found"):
        get_recognizer("insightface")


def test_missing_pieces_are_named(pack: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PACK_ENV, raising=False)
    for build in (lambda: get_detector("insightface"), lambda: get_recognizer("insightface")):
        with pytest.raises(
            ModelError, match="insightface needs a model-pack folder and none was given"
        ) as err:
            build()
        assert f"--insightface-pack DIR or set {PACK_ENV}" in str(err.value)
    monkeypatch.setenv(PACK_ENV, "")  # set but empty: the same as unset
    with pytest.raises(ModelError, match="none was given"):
        get_detector("insightface")
    with pytest.raises(ModelError, match="absent: model-pack folder not found"):
        get_detector("insightface", pack_dir=tmp_path / "absent")

    only_recognizer, only_detector = tmp_path / "recognizer", tmp_path / "detector"
    for folder, name in ((only_recognizer, "w600k_r50.onnx"), (only_detector, "det_10g.onnx")):
        folder.mkdir()
        (folder / name).write_bytes((pack / name).read_bytes())
    with pytest.raises(ModelError, match=r"no detector model among \['w600k_r50.onnx'\]") as err:
        get_detector("insightface", pack_dir=only_recognizer)
    assert "SCRFD/RetinaFace detector .onnx (buffalo_l: det_10g.onnx)" in str(err.value)
    with pytest.raises(ModelError, match=r"no recognizer model among \['det_10g.onnx'\]") as err:
        get_recognizer("insightface", pack_dir=only_detector)
    assert "ArcFace recognizer .onnx (buffalo_l: w600k_r50.onnx)" in str(err.value)
    # each half is usable alone
    assert get_recognizer("insightface", pack_dir=only_recognizer).dim == 512
    assert get_detector("insightface", pack_dir=only_detector).name == "insightface"


def test_missing_onnxruntime_names_the_extra(pack: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now raises ImportError
    for build in (lambda: get_detector("insightface"), lambda: get_recognizer("insightface", pack_dir=pack)):
        with pytest.raises(BackendUnavailable, match="need onnxruntime, which is not installed") as err:
            build()
        assert "pip install 'ifadit[insightface]'" in str(err.value)


def test_detector_options_scale_and_upsample(pack: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="upsample applies to the dlib detectors"):
        get_detector("insightface", pack_dir=pack, upsample=1)
    assert get_detector("insightface", pack_dir=pack, scale=(160, 160)).det_size == (160, 160)
    with pytest.raises(ValueError, match="has a fixed 160x160 input, so scale cannot change it"):
        get_detector("insightface", pack_dir=pack, scale=(320, 320))
    # a detector with an open input size (as insightface's SCRFD exports) runs at `scale`
    scrfd(tmp_path / "det_open.onnx", fixed=False)
    detector = get_detector("insightface", pack_dir=tmp_path, scale=(160, 160))
    assert [round(face.score, 3) for face in detector.detect(np.zeros((240, 320, 3), np.uint8))] == [0.9, 0.8]
    assert get_detector("insightface", pack_dir=tmp_path).det_size == (640, 640)  # insightface's default
    with pytest.raises(ValueError, match="input size must be positive multiples of 32, got 100x100"):
        get_detector("insightface", pack_dir=tmp_path, scale=(100, 100))
