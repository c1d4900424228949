"""Identity recognizers: canonical face crops -> identity embeddings, and a same-person decision.

Every recognizer accepts canonical crops (dlib chip geometry, padding 0.25; `ifadit.faces.align`) of any size
and resizes them to its own input. Four implementations:
- "dlib": dlib's ResNet 128-D through dlib's C++ (the reference);
- "torch-dlib": the same network in torch, differentiable (training identity losses use its `model`);
- "faceres": an independent MobileNet v1 (1024-D), for evaluation only, never in training;
- "insightface": ArcFace from an insightface model pack the user supplies (`pack_dir=` or
  $IFADIT_INSIGHTFACE_PACK; `ifadit.faces.insightface_adapter`, needs the `[insightface]` extra).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from ifadit.faces.align import check_crops
from ifadit.faces.distance import Metric, paired_distances
from ifadit.models.dlib_resnet import DAT_NAME, DlibResNet, load_dlib_resnet, models_dir
from ifadit.models.faceres import FaceRes, load_faceres
from ifadit.models.recognizer_names import DLIB_THRESHOLD, FACERES_THRESHOLD


class Recognizer(Protocol):
    """Canonical crops uint8 [N,S,S,3] -> float32 embeddings [N,dim]; same person when distance < threshold."""

    name: str  # registry name
    dim: int  # embedding length
    metric: Metric  # "l2" (Euclidean) or "cosine" (1 - cosine similarity)
    threshold: float  # same person when distance < threshold

    def embed(self, crops: np.ndarray) -> np.ndarray: ...

    def same_person(self, a: np.ndarray, b: np.ndarray) -> np.ndarray | bool: ...


def crops_to_img(crops: np.ndarray) -> torch.Tensor:
    """uint8 [N,S,S,3] -> `img` float32 [N,3,S,S] in [-1, 1] (read-only arrays too: the crops are copied)."""
    return torch.from_numpy(np.array(crops, order="C", copy=True)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


class _Thresholded:
    """`same_person` from `metric` and `threshold`."""

    metric: Metric
    threshold: float

    def same_person(self, a: np.ndarray, b: np.ndarray) -> np.ndarray | bool:
        """Row-wise decision for embeddings a, b ([dim] or [N,dim]): bool, or bool array [N]."""
        return paired_distances(a, b, self.metric) < self.threshold


class _TorchRecognizer(_Thresholded):
    """Batched, gradient-free `embed` through a torch module that takes `img` of any size."""

    model: torch.nn.Module

    def __init__(self, batch_size: int) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size  # crops per forward pass

    def embed(self, crops: np.ndarray) -> np.ndarray:
        check_crops(crops, allow_empty=False)
        device = next(self.model.parameters()).device  # follows `model.to(...)`, e.g. a GPU in training
        out = []
        with torch.no_grad():
            for start in range(0, len(crops), self.batch_size):
                out.append(self.model(crops_to_img(crops[start : start + self.batch_size]).to(device)).cpu())
        return torch.cat(out).numpy().astype(np.float32)


class DlibRecognizer(_Thresholded):
    """dlib's C++ `face_recognition_model_v1` on 150 px chips: the reference 128-D descriptor."""

    name = "dlib"
    dim = DlibResNet.dim
    metric: Metric = "l2"
    threshold = DLIB_THRESHOLD

    def __init__(self, path: Path | None = None) -> None:
        import dlib  # the C++ reference only; the torch port needs no dlib

        self._model = dlib.face_recognition_model_v1(
            str(path if path is not None else models_dir() / DAT_NAME)
        )

    def embed(self, crops: np.ndarray) -> np.ndarray:
        check_crops(crops, allow_empty=False)
        size = DlibResNet.input_size
        if crops.shape[1] != size:  # the same antialiased bilinear resize as the torch port, rounded to uint8
            img = F.interpolate(
                crops_to_img(crops), size=(size, size), mode="bilinear", align_corners=False, antialias=True
            )
            crops = ((img + 1.0) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
        chips = [np.ascontiguousarray(c) for c in crops]
        return np.array(self._model.compute_face_descriptor(chips), dtype=np.float32).reshape(-1, self.dim)


class TorchDlibRecognizer(_TorchRecognizer):
    """dlib's ResNet in torch (`ifadit.models.dlib_resnet`): same descriptor, differentiable, faster."""

    name = "torch-dlib"
    dim = DlibResNet.dim
    metric: Metric = "l2"
    threshold = DLIB_THRESHOLD

    def __init__(self, path: Path | None = None, batch_size: int = 32) -> None:
        super().__init__(batch_size)
        self.model: DlibResNet = load_dlib_resnet(path)  # use directly for losses: forward(img) -> [N,128]


class FaceresRecognizer(_TorchRecognizer):
    """Independent evaluation recognizer (`ifadit.models.faceres`); never use it in a training loss."""

    name = "faceres"
    dim = FaceRes.dim
    metric: Metric = "cosine"
    threshold = FACERES_THRESHOLD

    def __init__(self, path: Path | None = None, batch_size: int = 16) -> None:
        super().__init__(batch_size)
        self.model: FaceRes = load_faceres(path)
