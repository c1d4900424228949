"""dlib's ResNet-29 face descriptor (128-D) in torch, differentiable, with weights read from dlib's own .dat.

The weights come from `dlib_face_recognition_resnet_model_v1.dat` shipped by the `face-recognition-models`
package (read directly: no dlib at run time). The network reproduces dlib's descriptor to 1 - cos < 1e-6
(see `tests/models/test_dlib_resnet.py`); facts and pitfalls: `../shared/RECOGNIZERS.md`.

A training machine without that package (a lent GPU machine, whose calls carry 64 MiB in all) can read a
float16 copy instead: `save_half_copy` writes it (half the .dat's 22 MB) with the sha256 of the .dat it came
from, and `$IFADIT_DLIB_RESNET` points at it. Models trained so record that source sha256, so they load
where the .dat is installed; the copy's descriptors differ from the .dat's by rounding, so it is for
training, never for anonymizing.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from ifadit.errors import ModelError
from ifadit.models.dlib_files import models_dir
from ifadit.models.model_folder import sha256_file
from ifadit.models.recognizer_input import sized_img

DAT_NAME = "dlib_face_recognition_resnet_model_v1.dat"
RESNET_ENV = "IFADIT_DLIB_RESNET"  # weights file to read instead of the package's .dat (training machines)
SOURCE_SHA256 = "source_sha256"  # metadata of a float16 copy: the sha256 of the .dat it was made from

# (out_channels, downsample) per residual block, in forward order after the stem.
BLOCKS: tuple[tuple[int, bool], ...] = (
    (32, False), (32, False), (32, False),
    (64, True), (64, False), (64, False), (64, False),
    (128, True), (128, False), (128, False),
    (256, True), (256, False), (256, False),
    (256, True),
)  # fmt: skip


class ConvAffine(nn.Module):
    """dlib `con_` followed by `affine_`, folded into one convolution (y = gamma * (conv(x) + b) + beta).

    dlib pads by k // 2 at stride 1 and not at all at stride 2.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, padding=kernel // 2 if stride == 1 else 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def _pad_to(x: torch.Tensor, height: int, width: int, channels: int) -> torch.Tensor:
    """Zero-pad NCHW `x` at the bottom/right and at the channel end (dlib `add_prev_` on unequal shapes)."""
    _, c, h, w = x.shape
    if (c, h, w) == (channels, height, width):
        return x
    return F.pad(x, (0, width - w, 0, height - h, 0, channels - c))


class ResidualBlock(nn.Module):
    """dlib `ares` / `ares_down`: two ConvAffine 3x3 with a ReLU between, plus the (pooled) shortcut."""

    def __init__(self, in_ch: int, out_ch: int, down: bool) -> None:
        super().__init__()
        self.down = down
        self.conv1 = ConvAffine(in_ch, out_ch, 3, 2 if down else 1)
        self.conv2 = ConvAffine(out_ch, out_ch, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu(self.conv1(x)))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        height = max(out.shape[2], shortcut.shape[2])
        width = max(out.shape[3], shortcut.shape[3])
        channels = max(out.shape[1], shortcut.shape[1])
        out = _pad_to(out, height, width, channels)
        return F.relu(out + _pad_to(shortcut, height, width, channels))


class DlibResNet(nn.Module):
    """dlib ResNet-29 face descriptor: canonical crops `img` [N,3,S,S] in [-1, 1] -> [N,128] (not normalised)."""

    input_size = 150  # dlib's chip size (px)
    dim = 128  # descriptor length
    mean_rgb: torch.Tensor  # [3] dlib's per-channel means on the 0..255 scale (buffer)

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean_rgb", torch.tensor([122.782, 117.001, 104.298]))  # dlib avg_red/green/blue
        self.stem = ConvAffine(3, 32, 7, 2)  # 150 -> 72, then max-pool 3x3/2 valid -> 35
        blocks = []
        in_ch = 32
        for out_ch, down in BLOCKS:
            blocks.append(ResidualBlock(in_ch, out_ch, down))
            in_ch = out_ch
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(256, 128, bias=False)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        img = sized_img(img, self.input_size)
        x = ((img + 1.0) * 127.5 - self.mean_rgb.view(1, 3, 1, 1)) / 256.0  # dlib input_rgb_image_sized
        x = F.max_pool2d(F.relu(self.stem(x)), 3, 2)
        x = self.blocks(x)
        return self.fc(x.mean(dim=(2, 3)))


class _DatReader:
    """Cursor over dlib's serialisation: variable-length integers, mantissa/exponent floats, tensors."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data = data
        self.pos = 0
        self.path = path

    def fail(self, what: str) -> ModelError:
        return ModelError(f"{self.path}: not a dlib face recognition model ({what} at byte {self.pos})")

    def int(self) -> int:
        if self.pos >= len(self.data):
            raise self.fail("unexpected end of file")
        control = self.data[self.pos]
        size = control & 0x0F
        raw = self.data[self.pos + 1 : self.pos + 1 + size]
        if size > 8 or len(raw) != size:
            raise self.fail("bad integer")
        self.pos += 1 + size
        value = int.from_bytes(raw, "little")
        return -value if control & 0x80 else value

    def float(self) -> float:
        mantissa = self.int()
        exponent = self.int()
        return float(mantissa) * 2.0**exponent

    def string(self) -> str:
        length = self.int()
        raw = self.data[self.pos : self.pos + length]
        self.pos += length
        return raw.decode("ascii", errors="replace")

    def tensor(self) -> np.ndarray:
        if self.int() != 2:
            raise self.fail("unsupported tensor version")
        count = int(np.prod([self.int() for _ in range(4)]))
        end = self.pos + 4 * count
        if end > len(self.data):
            raise self.fail("truncated tensor")
        values = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.pos).astype(np.float32)
        self.pos = end
        return values

    def seek_tag(self, tag: str) -> None:
        """Move to the next serialised string `tag` and past it."""
        marker = struct.pack("BB", 1, len(tag)) + tag.encode()
        found = self.data.find(marker, self.pos)
        if found < 0:
            raise self.fail(f"layer '{tag}' missing")
        self.pos = found + len(marker)


def read_dlib_dat(path: Path) -> dict[str, torch.Tensor]:
    """Parse dlib's .dat into a `DlibResNet` state dict (affine layers folded into the convolutions)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(
            f"cannot read {path}: {exc.strerror}", hint="reinstall face-recognition-models"
        ) from exc
    reader = _DatReader(data, path)
    reader.int()  # serialisation version of the loss layer
    if reader.string() != "loss_metric_2":
        raise reader.fail("no loss_metric_2 header")
    reader.seek_tag("input_rgb_image_sized")
    mean_rgb = [reader.float() for _ in range(3)]
    if (reader.int(), reader.int()) != (DlibResNet.input_size, DlibResNet.input_size):
        raise reader.fail("input size is not 150x150")

    convs = [(n, m) for n, m in DlibResNet().named_modules() if isinstance(m, nn.Conv2d)]  # forward order
    state: dict[str, torch.Tensor] = {"mean_rgb": torch.tensor(mean_rgb, dtype=torch.float32)}
    for name, conv in convs:
        reader.seek_tag("con_4")
        params = reader.tensor()
        out_ch, k_h, k_w, s_y, s_x, p_y, p_x = (reader.int() for _ in range(7))
        expected = (conv.out_channels, *conv.kernel_size, *conv.stride, *conv.padding)
        if (out_ch, k_h, k_w, s_y, s_x, p_y, p_x) != expected:
            raise reader.fail(f"convolution {name} has shape {out_ch, k_h, k_w} stride {s_y}")
        n_weights = conv.weight.numel()
        if params.size != n_weights + out_ch:
            raise reader.fail(f"convolution {name} has {params.size} parameters")
        weight = params[:n_weights].reshape(conv.weight.shape)
        bias = params[n_weights:]
        reader.seek_tag("affine_")
        affine = reader.tensor()
        if affine.size != 2 * out_ch:
            raise reader.fail(f"affine after {name} has {affine.size} parameters")
        gamma, beta = affine[:out_ch], affine[out_ch:]
        state[f"{name}.weight"] = torch.from_numpy(weight * gamma[:, None, None, None])
        state[f"{name}.bias"] = torch.from_numpy(bias * gamma + beta)
    reader.seek_tag("fc_2")
    n_out, n_in = reader.int(), reader.int()
    fc = reader.tensor()
    if (n_out, n_in, fc.size) != (128, 256, 128 * 256):
        raise reader.fail(f"final layer is {n_in}->{n_out}")
    state["fc.weight"] = torch.from_numpy(np.ascontiguousarray(fc.reshape(n_in, n_out).T))
    return state


def resnet_file() -> Path:
    """The recognizer's weights file: `$IFADIT_DLIB_RESNET` when set, else face-recognition-models' .dat."""
    override = os.environ.get(RESNET_ENV)
    return Path(override) if override else models_dir() / DAT_NAME


def is_half_copy(path: Path) -> bool:
    return Path(path).suffix == ".safetensors"


def refuse_half_copy() -> None:
    """Raise `ModelError` when `$IFADIT_DLIB_RESNET` names a float16 copy: it is for training machines only, and
    a model that anonymizes, restores or is evaluated with it renders surrogates that differ from the .dat's by
    rounding (a restore elsewhere would not give the same pixels)."""
    path = resnet_file()
    if is_half_copy(path):
        raise ModelError(
            f"{path}: ${RESNET_ENV} names a float16 copy of dlib's recognizer, which is for training only; "
            "unset it to anonymize, restore or evaluate"
        )


def save_half_copy(dat: Path, out: Path) -> None:
    """Write the weights of dlib's `dat` as a float16 safetensors file `out` that records the .dat's sha256."""
    tensors = {k: v.half().contiguous() for k, v in read_dlib_dat(dat).items()}
    save_file(tensors, str(out), metadata={SOURCE_SHA256: sha256_file(dat)})


def _read_half_copy(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """(float32 state dict, source sha256) of a float16 copy; `ModelError` names the file and the fault."""
    try:
        with safe_open(str(path), framework="pt") as f:
            source = (f.metadata() or {}).get(SOURCE_SHA256)
        state = {k: v.float() for k, v in load_file(str(path)).items()}
    except FileNotFoundError:
        raise ModelError(f"{path}: no such file") from None
    except (OSError, SafetensorError) as exc:
        raise ModelError(f"{path}: not a safetensors file ({exc})") from None
    if source is None:
        raise ModelError(f"{path}: no {SOURCE_SHA256} in its metadata: not a copy made by save_half_copy")
    return state, source


def resnet_sha256(path: Path | None = None) -> str:
    """sha256 of the .dat whose weights `path` (default `resnet_file()`) holds: its own, or a copy's source."""
    path = resnet_file() if path is None else Path(path)
    return _read_half_copy(path)[1] if is_half_copy(path) else sha256_file(path)


def load_dlib_resnet(path: Path | None = None) -> DlibResNet:
    """The dlib ResNet in eval mode with weights from `path` (default `resnet_file()`): dlib's .dat or a
    float16 copy of it (`save_half_copy`)."""
    path = resnet_file() if path is None else Path(path)
    state = _read_half_copy(path)[0] if is_half_copy(path) else read_dlib_dat(path)
    model = DlibResNet()
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelError(f"{path}: weights do not fit dlib's ResNet ({exc})") from None
    return model.eval().requires_grad_(False)
