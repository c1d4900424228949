"""Test support for insightface packs: small ONNX models exported in the test with the packs' layouts.

Real insightface packs cannot be downloaded here, so the models are stand-ins with the packs' input and
output layouts: a seeded conv net with ArcFace's [N,3,112,112] -> [N,512] shape, a channel-mean probe, and
SCRFD-layout detectors whose outputs are fixed tensors placing faces at known anchors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

DET_SIZE = 160  # fixed detector input, W = H
STRIDES = (8, 16, 32)
ANCHORS = 2
# torch's default (dynamo) exporter needs onnxscript; the TorchScript one needs only onnx and warns it is legacy
EXPORT_WARNINGS = (
    "ignore:You are using the legacy TorchScript-based ONNX export:DeprecationWarning",
    "ignore:The feature will be removed:DeprecationWarning",
)


def export(
    module: torch.nn.Module,
    shape: tuple[int, ...],
    path: Path,
    outputs: int = 1,
    dynamic: bool = True,  # batch axis of input and outputs left open
    spatial: bool = False,  # input height and width left open (outputs keep their shapes)
) -> Path:
    """Export `module` on a zero input of `shape` to ONNX at `path`."""
    torch.manual_seed(0)
    names = [f"out{i}" for i in range(outputs)]
    axes = {"input.1": {0: "n"}, **{name: {0: "n"} for name in names}} if dynamic else {}
    if spatial:
        axes["input.1"] = {**axes.get("input.1", {}), 2: "h", 3: "w"}
    torch.onnx.export(
        module.eval(),
        (torch.zeros(shape),),
        str(path),
        dynamo=False,
        input_names=["input.1"],
        output_names=names,
        dynamic_axes=axes or None,
    )
    return path


class TinyArcFace(torch.nn.Module):
    """Seeded stand-in with ArcFace's shape: img [N,3,112,112] -> [N,512]."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 5, stride=4, padding=2)  # 112 -> 28
        self.fc = torch.nn.Linear(8 * 4 * 4, 512)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.nn.functional.avg_pool2d(torch.relu(self.conv(img)), 7).flatten(1))  # 28 -> 4


class ChannelMeans(torch.nn.Module):
    """img [N,3,H,W] -> its channel means [N,3]: shows what the recognizer was fed."""

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return img.mean(dim=(2, 3))


class Constant(torch.nn.Module):
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


def scrfd_outputs(keypoints: bool, batched: bool) -> list[np.ndarray]:
    """SCRFD outputs with a 0.9 face at FACE_CENTRE, its suppressed duplicate (0.7), a 0.8 face with box
    (16, 16)-(48, 48) in the detector's input, and a 0.3 one below the default threshold."""
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


def scrfd(path: Path, keypoints: bool = True, batched: bool = True, fixed: bool = True) -> Path:
    """An SCRFD-layout detector giving `scrfd_outputs` (right for a DET_SIZE input), exported to `path`;
    `fixed=False` leaves its input height and width open, as insightface's own SCRFD exports."""
    tensors = scrfd_outputs(keypoints, batched)
    shape = (1, 3, DET_SIZE, DET_SIZE)
    return export(Constant(tensors), shape, path, outputs=len(tensors), dynamic=False, spatial=not fixed)


def build_pack(folder: Path) -> Path:
    """A pack like buffalo_l in `folder`: detector, recognizer, and an attribute model (96 px) to be skipped."""
    folder.mkdir(parents=True, exist_ok=True)
    scrfd(folder / "det_10g.onnx")
    export(TinyArcFace(), (1, 3, 112, 112), folder / "w600k_r50.onnx")
    export(ChannelMeans(), (1, 3, 96, 96), folder / "genderage.onnx")
    return folder
