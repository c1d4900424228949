"""Pure-PyTorch StyleGAN2 primitives: FIR resampling (upfirdn2d), fused bias + activation, resampling convolution.

The maths follows the reference paths of NVIDIA's stylegan2-ada-pytorch `torch_utils/ops`, so weights trained
there give the same outputs here; no custom CUDA kernels are built, the code runs on CPU and CUDA alike.
Filters are prepared once with `setup_filter` and stored as module buffers (`resample_filter`, a 4x4 tensor for
the default [1, 3, 3, 1] kernel), exactly as in the official checkpoints.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

Padding = int | Sequence[int]

# Activation name -> (function, default gain). lrelu's gain sqrt(2) keeps unit variance as in the reference.
_ACTIVATIONS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], float]] = {
    "linear": (lambda x: x, 1.0),
    "relu": (F.relu, math.sqrt(2)),
    "lrelu": (lambda x: F.leaky_relu(x, 0.2), math.sqrt(2)),
}


def activation_gain(act: str) -> float:
    """Default output gain of activation `act` ('linear', 'relu', 'lrelu')."""
    if act not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {act!r}; expected one of {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[act][1]


def bias_act(
    x: torch.Tensor,  # input activations, any shape with channels on `dim`
    b: torch.Tensor | None = None,  # bias [C] added along `dim`, None = no bias
    dim: int = 1,  # axis that `b` runs along
    act: str = "linear",  # 'linear', 'relu' or 'lrelu'
    gain: float | None = None,  # output scale, None = the activation's default gain
    clamp: float | None = None,  # clamp the output to [-clamp, clamp], None = no clamping
) -> torch.Tensor:
    """Add a bias, apply an activation, scale and clamp: the reference `bias_act` in plain PyTorch."""
    def_gain = activation_gain(act)
    if b is not None:
        shape = [-1 if i == dim else 1 for i in range(x.ndim)]
        x = x + b.reshape(shape)
    gain = def_gain if gain is None else gain
    x = _ACTIVATIONS[act][0](x)
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def setup_filter(
    f: Sequence[float] | torch.Tensor,  # 1-D taps (made separable 2-D by outer product) or a 2-D kernel
    normalize: bool = True,  # scale so the taps sum to 1
    gain: float = 1.0,  # overall gain (spread over both axes)
) -> torch.Tensor:
    """Turn filter taps into the 2-D kernel tensor stored as `resample_filter` buffers."""
    t = torch.as_tensor(f, dtype=torch.float32)
    if t.ndim == 0:
        t = t[None]
    if t.ndim == 1:
        t = torch.outer(t, t)
    if t.ndim != 2:
        raise ValueError(f"filter must be 1-D or 2-D, got shape {tuple(t.shape)}")
    if normalize:
        t = t / t.sum()
    return t * (gain ** (t.ndim / 2))


def _pad4(padding: Padding) -> list[int]:
    """[x0, x1, y0, y1] from an int, (x, y) or (x0, x1, y0, y1)."""
    if isinstance(padding, int):
        return [padding] * 4
    p = [int(v) for v in padding]
    if len(p) == 2:
        return [p[0], p[0], p[1], p[1]]
    if len(p) != 4:
        raise ValueError(f"padding must have 1, 2 or 4 entries, got {p}")
    return p


def upfirdn2d(
    x: torch.Tensor,  # [N, C, H, W]
    f: torch.Tensor | None,  # 2-D FIR kernel [fh, fw], None = identity
    up: int = 1,  # upsampling factor (zeros inserted between samples)
    down: int = 1,  # downsampling factor (every `down`-th sample kept)
    padding: Padding = 0,  # [x0, x1, y0, y1] padding (negative = crop) after upsampling
    flip_filter: bool = False,  # False = convolution, True = correlation
    gain: float = 1.0,  # overall gain of the filter
) -> torch.Tensor:
    """Upsample, pad, FIR-filter and downsample a batch of images: the reference `upfirdn2d` path."""
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    n, c, h, w = x.shape
    px0, px1, py0, py1 = _pad4(padding)
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]
    f = (f * (gain ** (f.ndim / 2))).to(x.dtype)
    if not flip_filter:
        f = f.flip([0, 1])
    f = f[None, None].repeat([c, 1, 1, 1])
    x = F.conv2d(x, f, groups=c)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def _filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    """(fw, fh) of a 2-D kernel, (1, 1) for None."""
    if f is None:
        return 1, 1
    return int(f.shape[1]), int(f.shape[0])


def upsample2d(
    x: torch.Tensor, f: torch.Tensor, up: int = 2, padding: Padding = 0, gain: float = 1.0
) -> torch.Tensor:
    """Upsample by `up` with the FIR filter `f`; output is `up` times larger on each axis."""
    fw, fh = _filter_size(f)
    px0, px1, py0, py1 = _pad4(padding)
    p = [px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2, py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2]
    return upfirdn2d(x, f, up=up, padding=p, gain=gain * up * up)


def downsample2d(
    x: torch.Tensor, f: torch.Tensor, down: int = 2, padding: Padding = 0, gain: float = 1.0
) -> torch.Tensor:
    """Downsample by `down` after low-pass filtering with `f`."""
    fw, fh = _filter_size(f)
    px0, px1, py0, py1 = _pad4(padding)
    p = [
        px0 + (fw - down + 1) // 2,
        px1 + (fw - down) // 2,
        py0 + (fh - down + 1) // 2,
        py1 + (fh - down) // 2,
    ]
    return upfirdn2d(x, f, down=down, padding=p, gain=gain)


def _conv(
    x: torch.Tensor,
    w: torch.Tensor,
    stride: int = 1,
    padding: Padding = 0,
    groups: int = 1,
    transpose: bool = False,
    flip_weight: bool = True,
) -> torch.Tensor:
    """conv2d / conv_transpose2d; flip_weight=False flips the kernel (true convolution instead of correlation)."""
    if not flip_weight:
        w = w.flip([2, 3])
    if transpose:
        return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def conv2d_resample(
    x: torch.Tensor,  # [N, C_in * groups?, H, W]
    w: torch.Tensor,  # [C_out, C_in / groups, kh, kw]
    f: torch.Tensor | None = None,  # FIR filter for resampling, None when up == down == 1
    up: int = 1,  # integer upsampling factor
    down: int = 1,  # integer downsampling factor
    padding: Padding = 0,  # padding with respect to the upsampled image
    groups: int = 1,  # grouped convolution (one group per sample in the fused modulated conv)
    flip_weight: bool = True,  # True = correlation like F.conv2d, False = convolution
) -> torch.Tensor:
    """2-D convolution with optional FIR up/downsampling, computed the cheapest equivalent way."""
    out_channels, in_per_group, kh, kw = w.shape
    fw, fh = _filter_size(f)
    px0, px1, py0, py1 = _pad4(padding)
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2

    if kw == 1 and kh == 1 and down > 1 and up == 1:
        x = upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1])
        return _conv(x, w, groups=groups, flip_weight=flip_weight)
    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up * up)
    if down > 1 and up == 1:
        x = upfirdn2d(x, f, padding=[px0, px1, py0, py1])
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight)
    if up > 1:
        # Transposed convolution with stride `up`, then the FIR filter absorbs the remaining padding.
        if groups == 1:
            w = w.transpose(0, 1)
        else:
            w = w.reshape(groups, out_channels // groups, in_per_group, kh, kw).transpose(1, 2)
            w = w.reshape(groups * in_per_group, out_channels // groups, kh, kw)
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = _conv(
            x, w, stride=up, padding=[pyt, pxt], groups=groups, transpose=True, flip_weight=not flip_weight
        )
        x = upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up * up)
        if down > 1:
            x = upfirdn2d(x, f, down=down)
        return x
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)
    x = upfirdn2d(x, None, padding=[px0, px1, py0, py1])
    x = _conv(x, w, groups=groups, flip_weight=flip_weight)
    if down > 1:
        x = upfirdn2d(x, f, down=down)
    return x


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale `x` to unit root-mean-square along `dim` (pixel norm of the latent)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def modulated_conv2d(
    x: torch.Tensor,  # [N, C_in, H, W]
    weight: torch.Tensor,  # [C_out, C_in, kh, kw], shared by the batch
    styles: torch.Tensor,  # [N, C_in] per-sample modulation
    noise: torch.Tensor | None = None,  # added after demodulation, broadcastable to the output
    up: int = 1,  # integer upsampling factor
    down: int = 1,  # integer downsampling factor
    padding: Padding = 0,  # padding with respect to the upsampled image
    resample_filter: torch.Tensor | None = None,  # FIR filter from setup_filter, needed when resampling
    demodulate: bool = True,  # normalise each output feature map to unit expected variance
    flip_weight: bool = True,  # False = convolution, True = correlation
    fused_modconv: bool = True,  # one grouped conv per batch (True) or scale activations around a shared conv
) -> torch.Tensor:
    """StyleGAN2's weight-modulated convolution with demodulation; both execution forms give the same result."""
    n = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    if x.shape[1] != in_channels or styles.shape != (n, in_channels):
        raise ValueError(
            f"modulated_conv2d: x {tuple(x.shape)} / styles {tuple(styles.shape)} do not match weight {tuple(weight.shape)}"
        )
    if x.dtype == torch.float16 and demodulate:
        weight = weight * (
            1 / math.sqrt(in_channels * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True)
        )
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    w = None
    dcoefs = None
    if demodulate or fused_modconv:
        w = weight.unsqueeze(0) * styles.reshape(n, 1, -1, 1, 1)  # [N, O, I, k, k]
    if demodulate:
        assert w is not None
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [N, O]
    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(n, -1, 1, 1)
        x = conv2d_resample(
            x,
            weight.to(x.dtype),
            f=resample_filter,
            up=up,
            down=down,
            padding=padding,
            flip_weight=flip_weight,
        )
        if dcoefs is not None:
            x = x * dcoefs.to(x.dtype).reshape(n, -1, 1, 1)
        if noise is not None:
            x = x + noise.to(x.dtype)
        return x

    assert w is not None
    if dcoefs is not None:
        w = w * dcoefs.reshape(n, -1, 1, 1, 1)
    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, in_channels, kh, kw)
    x = conv2d_resample(
        x,
        w.to(x.dtype),
        f=resample_filter,
        up=up,
        down=down,
        padding=padding,
        groups=n,
        flip_weight=flip_weight,
    )
    x = x.reshape(n, -1, *x.shape[2:])
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x
