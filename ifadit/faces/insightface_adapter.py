"""insightface model packs (SCRFD/RetinaFace detector, ArcFace recognizer) run through onnxruntime.

The user supplies a model-pack folder (e.g. insightface's `buffalo_l`: det_10g.onnx, w600k_r50.onnx, ...);
packs cannot be downloaded here and the `insightface` package itself is not used (it pulls the non-headless
OpenCV). Models are recognised as insightface does, by their inputs and outputs: a detector has 6, 9, 10 or
15 outputs (scores, box distances and optionally 5 keypoints per feature stride), an ArcFace recognizer
one input of [N, 3, 112, 112] and one [N, D] output. Needs the `[insightface]` extra (onnxruntime, onnx).
Registered as "insightface" in both `ifadit.faces.registry.DETECTORS` and `ifadit.faces.registry.RECOGNIZERS`
(imported on first use there); the pack folder comes from `pack_dir=` or $IFADIT_INSIGHTFACE_PACK.

Geometry: the detector's keypoints (eye centres, nose tip, mouth corners) are turned into the project's
dlib-order 5 landmarks through dlib's mean face, so `align_face` cuts the same canonical crop whichever
detector ran. The recognizer takes canonical crops (padding 0.25, any size) like every `Recognizer` and
warps them onto ArcFace's 112 px template; ArcFace's crop reaches about 20 % higher (forehead) than the
canonical crop, and those rows are filled by repeating the crop's top edge.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ifadit.errors import BackendUnavailable, ModelError
from ifadit.faces.align import CANONICAL_PADDING, TEMPLATE_5, check_crops
from ifadit.faces.detect import Face, landmarks5
from ifadit.faces.distance import Metric, paired_distances
from ifadit.media.image import check_image

# Eye centres, nose tip and mouth corners (insightface's keypoint order: image-left eye first) on dlib's
# mean face (interpolation.h, 68-point mean shape: means of points 36-41 and 42-47, points 30, 48, 54),
# in the unit template frame of TEMPLATE_5.
KEYPOINTS_TEMPLATE = np.array(
    [
        [0.225492, 0.215990],
        [0.754761, 0.215990],
        [0.490127, 0.515625],
        [0.254149, 0.780233],
        [0.726104, 0.780233],
    ]
)
# ArcFace's 112 px alignment targets for the same 5 keypoints (insightface utils/face_align.py).
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ]
)
ARCFACE_SIZE = 112
PACK_ENV = "IFADIT_INSIGHTFACE_PACK"  # default model-pack folder
ROLE_EXAMPLES = {
    "detector": "an SCRFD/RetinaFace detector .onnx (buffalo_l: det_10g.onnx)",
    "recognizer": "an ArcFace recognizer .onnx (buffalo_l: w600k_r50.onnx)",
}
DETECTOR_LAYOUTS = {  # outputs -> (feature strides, anchors per location, has keypoints), as insightface
    6: ((8, 16, 32), 2, False),
    9: ((8, 16, 32), 2, True),
    10: ((8, 16, 32, 64, 128), 1, False),
    15: ((8, 16, 32, 64, 128), 1, True),
}


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise BackendUnavailable(
            "insightface models need onnxruntime, which is not installed",
            hint="pip install 'ifadit[insightface]'",
        ) from None
    return onnxruntime


def _session(path: Path, *, optimize: bool = True) -> Any:
    ort = _onnxruntime()
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    options = ort.SessionOptions()
    if not optimize:  # enough to read inputs and outputs, and much faster to open
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own unexported exception classes
        raise ModelError(f"{path}: not a loadable ONNX model ({str(exc).splitlines()[0]})") from None


def similarity_matrix(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, shift) mapping points src -> dst, as [2, 3]."""
    src, dst = np.asarray(src, dtype=np.float64), np.asarray(dst, dtype=np.float64)
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    s, d = src - src_mean, dst - dst_mean
    a = (s * d).sum() / (s**2).sum()  # scale * cos
    b = (s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum() / (s**2).sum()  # scale * sin
    linear = np.array([[a, -b], [b, a]])
    return np.hstack([linear, (dst_mean - linear @ src_mean)[:, None]])


def keypoints_to_landmarks(keypoints: np.ndarray) -> np.ndarray:
    """insightface's 5 keypoints [5, 2] -> the project's dlib-order 5 landmarks [5, 2] via dlib's mean face."""
    matrix = similarity_matrix(KEYPOINTS_TEMPLATE, keypoints)
    return TEMPLATE_5 @ matrix[:, :2].T + matrix[:, 2]


def canonical_to_arcface(size: int) -> np.ndarray:
    """[2, 3] map from a `size` px canonical crop (padding 0.25) to ArcFace's 112 px crop."""
    in_crop = (CANONICAL_PADDING + KEYPOINTS_TEMPLATE) / (2 * CANONICAL_PADDING + 1) * size
    return similarity_matrix(in_crop, ARCFACE_TEMPLATE)


class InsightFaceDetector:
    """SCRFD / RetinaFace ONNX detector in insightface's output layout, behind the `Detector` protocol."""

    name = "insightface"

    def __init__(
        self,
        model: str | Path,
        *,
        thresh: float = 0.5,  # drop detections scoring below this (sigmoid probability)
        nms_thresh: float = 0.4,  # suppress boxes overlapping a better one by more than this IoU
        det_size: tuple[int, int] = (640, 640),  # network input (W, H) for models without a fixed one
    ) -> None:
        self.path = Path(model)
        self._session = _session(self.path)
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        layout = DETECTOR_LAYOUTS.get(len(outputs))
        if layout is None or len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ModelError(f"{self.path}: not an SCRFD/RetinaFace detector ({len(outputs)} outputs)")
        self.strides, self.anchors, self.has_keypoints = layout
        height, width = inputs[0].shape[2:4]
        fixed = isinstance(height, int) and isinstance(width, int)
        self.det_size = (width, height) if fixed else (int(det_size[0]), int(det_size[1]))
        step = max(self.strides)  # each feature map must tile the input exactly
        if not fixed and (self.det_size[0] % step or self.det_size[1] % step or min(self.det_size) < step):
            size = "x".join(map(str, self.det_size))
            raise ValueError(f"{self.path}: input size must be positive multiples of {step}, got {size}")
        self.thresh, self.nms_thresh = float(thresh), float(nms_thresh)
        self._input = inputs[0].name

    def detect(self, image: np.ndarray) -> list[Face]:
        check_image(image)
        height, width = image.shape[:2]
        det_w, det_h = self.det_size
        scale = min(det_w / width, det_h / height)  # fit inside, keep the aspect ratio, pad bottom/right
        new_w, new_h = max(1, int(width * scale)), max(1, int(height * scale))
        canvas = np.zeros((det_h, det_w, 3), dtype=np.float32)
        canvas[:new_h, :new_w] = cv2.resize(image, (new_w, new_h))
        blob = ((canvas - 127.5) / 128.0).transpose(2, 0, 1)[None]  # RGB, as insightface after swapRB
        outputs = [np.asarray(o) for o in self._session.run(None, {self._input: blob})]
        scores, boxes, keypoints = self._decode(outputs, det_w, det_h)
        scale_x, scale_y = new_w / width, new_h / height
        boxes /= np.array([scale_x, scale_y, scale_x, scale_y])
        keypoints /= np.array([scale_x, scale_y])
        faces = []
        for index in _nms(boxes, scores, self.nms_thresh):
            x0, y0, x1, y1 = np.clip(boxes[index], 0, [width, height, width, height])
            if x1 - x0 < 1 or y1 - y0 < 1:
                continue
            box = (float(x0), float(y0), float(x1), float(y1))
            points = (
                keypoints_to_landmarks(keypoints[index]) if self.has_keypoints else landmarks5(image, box)
            )
            faces.append(Face(box=box, score=float(scores[index]), landmarks=points))
        return faces

    def _decode(self, outputs: list[np.ndarray], det_w: int, det_h: int) -> tuple[np.ndarray, ...]:
        count = len(self.strides)
        scores, boxes, keypoints = [], [], []
        for level, stride in enumerate(self.strides):
            rows, cols = det_h // stride, det_w // stride
            xs, ys = np.meshgrid(np.arange(cols), np.arange(rows))  # row-major locations, (x, y) each
            centres = np.stack([xs, ys], axis=-1).reshape(-1, 2) * stride
            centres = np.repeat(centres, self.anchors, axis=0).astype(np.float64)
            level_scores = outputs[level].reshape(-1)
            if level_scores.size != len(centres):
                raise ModelError(
                    f"{self.path}: stride {stride} scores have {level_scores.size} entries, "
                    f"expected {len(centres)} for a {det_w}x{det_h} input"
                )
            keep = level_scores >= self.thresh
            distances = outputs[level + count].reshape(-1, 4)[keep] * stride
            kept = centres[keep]
            scores.append(level_scores[keep])
            boxes.append(np.hstack([kept - distances[:, :2], kept + distances[:, 2:]]))
            if self.has_keypoints:
                offsets = outputs[level + 2 * count].reshape(-1, 5, 2)[keep] * stride
                keypoints.append(kept[:, None, :] + offsets)
        all_keypoints = np.concatenate(keypoints) if keypoints else np.zeros((sum(map(len, scores)), 5, 2))
        return np.concatenate(scores), np.concatenate(boxes), all_keypoints


def _nms(boxes: np.ndarray, scores: np.ndarray, thresh: float) -> list[int]:
    """Indices kept by greedy non-maximum suppression, best score first."""
    order = list(np.argsort(-scores, kind="stable"))
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep: list[int] = []
    while order:
        best, rest = order[0], np.array(order[1:], dtype=int)
        keep.append(int(best))
        if not len(rest):
            break
        x0 = np.maximum(boxes[best, 0], boxes[rest, 0])
        y0 = np.maximum(boxes[best, 1], boxes[rest, 1])
        x1 = np.minimum(boxes[best, 2], boxes[rest, 2])
        y1 = np.minimum(boxes[best, 3], boxes[rest, 3])
        inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
        iou = inter / np.maximum(area[best] + area[rest] - inter, 1e-12)
        order = list(rest[iou <= thresh])
    return keep


class ArcFaceRecognizer:
    """insightface ArcFace ONNX recognizer behind the `Recognizer` protocol (cosine metric)."""

    name = "insightface"  # registry name (ifadit.faces.registry.RECOGNIZERS)
    metric: Metric = "cosine"

    def __init__(
        self,
        model: str | Path,
        *,
        # same person under this cosine distance; a starting point (similarity 0.4), not calibrated here:
        # calibrate on reid/dlib-johns with the user's pack before relying on it
        threshold: float = 0.6,
        batch_size: int = 32,  # crops per ONNX run
    ) -> None:
        self.path = Path(model)
        self._session = _session(self.path)
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if (
            len(inputs) != 1
            or list(inputs[0].shape[1:]) != [3, ARCFACE_SIZE, ARCFACE_SIZE]
            or len(outputs) != 1
        ):
            shapes = [i.shape for i in inputs]
            raise ModelError(
                f"{self.path}: not an ArcFace recognizer (inputs {shapes}, {len(outputs)} outputs)"
            )
        dim = outputs[0].shape[-1]
        if not isinstance(dim, int):
            raise ModelError(f"{self.path}: ArcFace output has no fixed embedding size ({outputs[0].shape})")
        self.dim = dim
        self.threshold = float(threshold)
        self.batch_size = int(batch_size)
        self._input = inputs[0].name
        self._fixed_batch = inputs[0].shape[0] if isinstance(inputs[0].shape[0], int) else None
        # mxnet-converted packs normalise inside the graph (Sub and Mul among the first nodes): feed raw pixels
        self.mean, self.std = (0.0, 1.0) if _normalises_inside(self.path) else (127.5, 127.5)

    def arcface_crops(self, crops: np.ndarray) -> np.ndarray:
        """Canonical crops uint8 [N, S, S, 3] -> ArcFace-aligned crops uint8 [N, 112, 112, 3]."""
        check_crops(crops, allow_empty=False)
        matrix = canonical_to_arcface(crops.shape[1])
        return np.stack(
            [
                cv2.warpAffine(crop, matrix, (ARCFACE_SIZE, ARCFACE_SIZE), borderMode=cv2.BORDER_REPLICATE)
                for crop in crops
            ]
        )

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """Canonical crops uint8 [N, S, S, 3] -> float32 embeddings [N, dim] (not normalised, as ArcFace)."""
        aligned = self.arcface_crops(crops)
        blob = ((aligned.astype(np.float32) - self.mean) / self.std).transpose(0, 3, 1, 2)
        step = self._fixed_batch or self.batch_size
        out = [
            self._session.run(None, {self._input: blob[i : i + step]})[0] for i in range(0, len(blob), step)
        ]
        return np.concatenate(out).astype(np.float32).reshape(len(crops), self.dim)

    def same_person(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Row-wise decision for embeddings a, b ([dim] or [N, dim]): cosine distance < threshold."""
        return np.asarray(paired_distances(a, b, self.metric) < self.threshold)


def _normalises_inside(path: Path) -> bool:
    """insightface's test: an mxnet-exported ArcFace starts with Sub and Mul nodes (mean/std in the graph)."""
    try:
        import onnx
    except ImportError:
        raise BackendUnavailable(
            "reading ArcFace models needs onnx, which is not installed",
            hint="pip install 'ifadit[insightface]'",
        ) from None
    nodes = [node.name for node in onnx.load(str(path), load_external_data=False).graph.node[:8]]
    has_sub = any(name.startswith(("Sub", "_minus")) for name in nodes)
    has_mul = any(name.startswith(("Mul", "_mul")) for name in nodes)
    return has_sub and has_mul


@dataclass(frozen=True)
class ModelPack:
    """The detector and recognizer files found in a model-pack folder."""

    detector: Path
    recognizer: Path


def _role(path: Path) -> str | None:
    session = _session(path, optimize=False)
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(outputs) >= 5:
        return "detector"
    shape = inputs[0].shape if inputs else []
    if len(shape) == 4 and shape[2:4] == [ARCFACE_SIZE, ARCFACE_SIZE] and len(outputs) == 1:
        return "recognizer"
    return None  # landmark, gender/age or other models of the pack


def pack_folder(pack_dir: str | Path | None = None) -> Path:
    """The model-pack folder: `pack_dir`, else $IFADIT_INSIGHTFACE_PACK; `ModelError` when neither is set."""
    chosen = pack_dir if pack_dir is not None else os.environ.get(PACK_ENV) or None
    if chosen is None:
        raise ModelError(
            "insightface needs a model-pack folder and none was given",
            hint=f"pass --insightface-pack DIR or set {PACK_ENV} to a folder such as buffalo_l holding its .onnx files",
        )
    folder = Path(chosen)
    if not folder.is_dir():
        raise ModelError(
            f"{folder}: model-pack folder not found", hint="pass the folder holding the .onnx files"
        )
    return folder


def find_model(folder: str | Path | None, role: str, name: str | None = None) -> Path:
    """The `role` ("detector" or "recognizer") model of the pack in `folder` (None: $IFADIT_INSIGHTFACE_PACK):
    the file `name`, else the one `.onnx` whose inputs and outputs fit the role."""
    folder = pack_folder(folder)
    if name is not None:
        path = folder / name
        if _role(path) != role:
            raise ModelError(f"{path}: is not an insightface {role} model")
        return path
    files = sorted(folder.glob("*.onnx"))
    found = [path for path in files if _role(path) == role]
    if not found:
        raise ModelError(
            f"{folder}: no {role} model among {[p.name for p in files] or 'no .onnx files'}",
            hint=f"the pack needs {ROLE_EXAMPLES[role]}",
        )
    if len(found) > 1:
        raise ModelError(
            f"{folder}: several {role} models ({', '.join(p.name for p in found)})",
            hint=f"name the one to use ({role}=FILE)",
        )
    return found[0]


def find_pack(
    folder: str | Path | None, *, detector: str | None = None, recognizer: str | None = None
) -> ModelPack:
    """Pick the detector and the recognizer among a pack's `.onnx` files, or take the ones named."""
    return ModelPack(
        detector=find_model(folder, "detector", detector),
        recognizer=find_model(folder, "recognizer", recognizer),
    )


def load_pack(
    folder: str | Path | None, *, detector: str | None = None, recognizer: str | None = None
) -> tuple[InsightFaceDetector, ArcFaceRecognizer]:
    """The detector and the ArcFace recognizer of a model pack, ready to use."""
    pack = find_pack(folder, detector=detector, recognizer=recognizer)
    return InsightFaceDetector(pack.detector), ArcFaceRecognizer(pack.recognizer)


def insightface_detector(
    pack_dir: str | Path | None = None,
    *,
    thresh: float = 0.5,  # sigmoid probability, as `InsightFaceDetector`
    scale: tuple[int, int] | None = None,  # (W, H) network input for models without a fixed one
    upsample: int = 0,  # dlib detectors only: must stay 0
) -> InsightFaceDetector:
    """The registry's "insightface" detector: the pack's detector (`pack_folder` resolves `pack_dir`)."""
    if upsample:
        raise ValueError("upsample applies to the dlib detectors (hog, cnn) only; use scale for insightface")
    _onnxruntime()  # report a missing extra before anything about the folder
    path = find_model(pack_dir, "detector")
    if scale is None:
        return InsightFaceDetector(path, thresh=thresh)
    detector = InsightFaceDetector(path, thresh=thresh, det_size=scale)
    if detector.det_size != tuple(scale):
        width, height = detector.det_size
        raise ValueError(f"{path}: has a fixed {width}x{height} input, so scale cannot change it")
    return detector


def insightface_recognizer(pack_dir: str | Path | None = None) -> ArcFaceRecognizer:
    """The registry's "insightface" recognizer: the pack's ArcFace (`pack_folder` resolves `pack_dir`)."""
    _onnxruntime()
    return ArcFaceRecognizer(find_model(pack_dir, "recognizer"))
