"""StyleGAN2 generator (skip) and discriminator (resnet) in the layout of NVIDIA's stylegan2-ada-pytorch.

Class names, attribute names (`mapping.fc{i}`, `synthesis.b{res}.conv0/conv1/torgb`, `b{res}.fromrgb/skip`,
`b4.mbstd/conv/fc/out`) and parameter/buffer names (`weight`, `bias`, `affine`, `noise_const`,
`noise_strength`, `resample_filter`, `const`, `w_avg`) match the official networks, so an official state dict
loads 1:1. Equalized learning rate: weights are stored N(0, 1) and scaled at run time. The architecture is
configured by frozen dataclasses (`GeneratorConfig`, `DiscriminatorConfig`) that are saved beside the weights.
Works at any power-of-two resolution from 4 to 1024 px. Runs in fp32 (official `num_fp16_res` is not needed
for correctness: `conv_clamp` is still honoured).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np
import torch

from ifadit.models.stylegan2 import ops

NOISE_MODES = ("random", "const", "none")


class _Config:
    """What both network configs share: `img_resolution` checked on construction, and the JSON round trip of
    the config.json beside the weights. Subclasses are frozen dataclasses (their fields are the config)."""

    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]
    img_resolution: int

    def __post_init__(self) -> None:
        _check_resolution(self.img_resolution)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (round-trips through `from_dict`)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build from `to_dict` output; unknown keys are a `ValueError` naming them."""
        return cls(**_known_fields(cls, data))


@dataclass(frozen=True)
class GeneratorConfig(_Config):
    """Architecture of a `Generator`; the names follow the official `G_kwargs`."""

    img_resolution: int = 64  # output size in px, a power of two >= 4
    img_channels: int = 3  # colour channels of the output
    z_dim: int = 512  # input latent Z dimensionality
    c_dim: int = 0  # conditioning label dimensionality, 0 = unconditional
    w_dim: int = 512  # intermediate latent W dimensionality
    mapping_layers: int = 8  # fully connected layers in the mapping network
    mapping_lr_multiplier: float = 0.01  # learning-rate multiplier of the mapping layers
    w_avg_beta: float = 0.995  # decay of the tracked W average (truncation centre)
    channel_base: int = 32768  # channels at resolution r = min(channel_base // r, channel_max)
    channel_max: int = 512  # cap on the channels of any layer
    conv_clamp: float | None = None  # clamp conv outputs to +-X, None = no clamping


@dataclass(frozen=True)
class DiscriminatorConfig(_Config):
    """Architecture of a `Discriminator` (resnet, unconditional)."""

    img_resolution: int = 64  # input size in px, a power of two >= 4
    img_channels: int = 3  # colour channels of the input
    channel_base: int = 32768  # channels at resolution r = min(channel_base // r, channel_max)
    channel_max: int = 512  # cap on the channels of any layer
    mbstd_group_size: int = 4  # minibatch-stddev group size (the batch must be divisible by it)
    mbstd_num_channels: int = 1  # minibatch-stddev feature channels, 0 = disable
    conv_clamp: float | None = None  # clamp conv outputs to +-X, None = no clamping


def _check_resolution(res: int) -> None:
    if res < 4 or res & (res - 1):
        raise ValueError(f"img_resolution must be a power of two >= 4, got {res}")


def channels_at(res: int, channel_base: int, channel_max: int) -> int:
    """Feature channels of the blocks at resolution `res`: min(channel_base // res, channel_max), as NVIDIA's."""
    return min(channel_base // res, channel_max)


def _known_fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown fields {unknown}")
    return dict(data)


def _check_shape(x: torch.Tensor, shape: list[int | None], what: str) -> None:
    """Raise ValueError when `x` does not have `shape` (None = any size on that axis)."""
    ok = x.ndim == len(shape) and all(s is None or s == d for s, d in zip(shape, x.shape, strict=True))
    if not ok:
        raise ValueError(f"{what}: expected shape {shape}, got {list(x.shape)}")


class FullyConnectedLayer(torch.nn.Module):
    """Dense layer with equalized learning rate and a fused bias + activation."""

    def __init__(
        self,
        in_features: int,  # input features
        out_features: int,  # output features
        bias: bool = True,  # add a bias before the activation
        activation: str = "linear",  # 'linear', 'relu' or 'lrelu'
        lr_multiplier: float = 1.0,  # learning-rate multiplier (mapping network: 0.01)
        bias_init: float = 0.0,  # initial bias value (affine layers: 1)
    ) -> None:
        super().__init__()
        self.activation = activation
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = torch.nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b: torch.Tensor | None = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return ops.bias_act(x.matmul(w.t()), b, act=self.activation)


class Conv2dLayer(torch.nn.Module):
    """Convolution with equalized learning rate, optional FIR up/downsampling and fused bias + activation."""

    resample_filter: torch.Tensor

    def __init__(
        self,
        in_channels: int,  # input channels
        out_channels: int,  # output channels
        kernel_size: int,  # square kernel width
        bias: bool = True,  # add a bias before the activation
        activation: str = "linear",  # 'linear', 'relu' or 'lrelu'
        up: int = 1,  # integer upsampling factor
        down: int = 1,  # integer downsampling factor
        resample_filter: tuple[int, ...] = (1, 3, 3, 1),  # low-pass taps used when resampling
        conv_clamp: float | None = None,  # clamp outputs to +-X, None = no clamping
    ) -> None:
        super().__init__()
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", ops.setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.act_gain = ops.activation_gain(activation)
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels])) if bias else None

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = (self.weight * self.weight_gain).to(x.dtype)
        b = self.bias.to(x.dtype) if self.bias is not None else None
        x = ops.conv2d_resample(
            x,
            w,
            f=self.resample_filter,
            up=self.up,
            down=self.down,
            padding=self.padding,
            flip_weight=self.up == 1,
        )
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return ops.bias_act(x, b, act=self.activation, gain=self.act_gain * gain, clamp=clamp)


class MappingNetwork(torch.nn.Module):
    """Z (and optional label C) -> W, broadcast to `num_ws` copies, with the tracked average `w_avg`."""

    w_avg: torch.Tensor

    def __init__(
        self,
        z_dim: int,  # input latent Z dimensionality, 0 = no latent
        c_dim: int,  # label dimensionality, 0 = no label
        w_dim: int,  # output latent W dimensionality
        num_ws: int | None,  # copies of W to output, None = return [N, w_dim]
        num_layers: int = 8,  # dense layers
        activation: str = "lrelu",  # activation of every layer
        lr_multiplier: float = 0.01,  # learning-rate multiplier of every layer
        w_avg_beta: float | None = 0.995,  # decay of the tracked W average, None = do not track
    ) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        embed_features = w_dim if c_dim > 0 else 0
        features = [z_dim + embed_features] + [w_dim] * num_layers
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            layer = FullyConnectedLayer(
                features[idx], features[idx + 1], activation=activation, lr_multiplier=lr_multiplier
            )
            setattr(self, f"fc{idx}", layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(
        self,
        z: torch.Tensor | None,  # [N, z_dim]
        c: torch.Tensor | None = None,  # [N, c_dim] or None when c_dim == 0
        truncation_psi: float = 1.0,  # 1 = no truncation, 0 = every W is w_avg
        truncation_cutoff: int | None = None,  # truncate only the first N ws, None = all
        update_w_avg: bool = True,  # track the W average (training mode only)
    ) -> torch.Tensor:
        x = None
        if self.z_dim > 0:
            assert z is not None
            _check_shape(z, [None, self.z_dim], "mapping z")
            x = ops.normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"mapping: this network needs a label c of {self.c_dim} features")
            y = ops.normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y
        assert x is not None
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        if self.w_avg_beta is not None and self.training and update_w_avg:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            if self.w_avg_beta is None:
                raise ValueError("mapping: truncation needs a tracked w_avg (w_avg_beta is None)")
            if self.num_ws is None or truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x = x.clone()
                x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x


class SynthesisLayer(torch.nn.Module):
    """Modulated 3x3 convolution (optionally upsampling x2) + per-pixel noise + bias + lrelu."""

    resample_filter: torch.Tensor
    noise_const: torch.Tensor

    def __init__(
        self,
        in_channels: int,  # input channels
        out_channels: int,  # output channels
        w_dim: int,  # W dimensionality feeding the affine style layer
        resolution: int,  # output resolution of this layer
        kernel_size: int = 3,  # convolution kernel width
        up: int = 1,  # 2 = upsample the input first
        use_noise: bool = True,  # add per-pixel noise
        activation: str = "lrelu",  # activation
        resample_filter: tuple[int, ...] = (1, 3, 3, 1),  # low-pass taps for upsampling
        conv_clamp: float | None = None,  # clamp outputs to +-X, None = no clamping
    ) -> None:
        super().__init__()
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", ops.setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.act_gain = ops.activation_gain(activation)
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = torch.nn.Parameter(torch.zeros([]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))

    def forward(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        noise_mode: str = "random",
        fused_modconv: bool = True,
        gain: float = 1.0,
    ) -> torch.Tensor:
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        in_res = self.resolution // self.up
        _check_shape(x, [None, self.weight.shape[1], in_res, in_res], "synthesis layer input")
        styles = self.affine(w)
        noise = None
        if self.use_noise and noise_mode == "random":
            noise = (
                torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device)
                * self.noise_strength
            )
        if self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        x = ops.modulated_conv2d(
            x,
            self.weight,
            styles,
            noise=noise,
            up=self.up,
            padding=self.padding,
            resample_filter=self.resample_filter,
            flip_weight=self.up == 1,
            fused_modconv=fused_modconv,
        )
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return ops.bias_act(
            x, self.bias.to(x.dtype), act=self.activation, gain=self.act_gain * gain, clamp=clamp
        )


class ToRGBLayer(torch.nn.Module):
    """Modulated 1x1 convolution to RGB without demodulation."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        kernel_size: int = 1,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = ops.modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return ops.bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)


class SynthesisBlock(torch.nn.Module):
    """One resolution of the skip generator: [const | conv0 (up x2)], conv1, torgb added to the upsampled image."""

    resample_filter: torch.Tensor

    def __init__(
        self,
        in_channels: int,  # input channels, 0 = first block (learned constant input)
        out_channels: int,  # output channels
        w_dim: int,  # W dimensionality
        resolution: int,  # resolution of this block
        img_channels: int,  # colour channels of the image
        is_last: bool,  # last block of the network
        resample_filter: tuple[int, ...] = (1, 3, 3, 1),  # low-pass taps for upsampling
        conv_clamp: float | None = None,  # clamp conv outputs to +-X, None = no clamping
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.is_last = is_last
        self.register_buffer("resample_filter", ops.setup_filter(resample_filter))
        self.num_conv = 0
        self.num_torgb = 0
        if in_channels == 0:
            self.const = torch.nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(
                in_channels,
                out_channels,
                w_dim=w_dim,
                resolution=resolution,
                up=2,
                resample_filter=resample_filter,
                conv_clamp=conv_clamp,
            )
            self.num_conv += 1
        self.conv1 = SynthesisLayer(
            out_channels, out_channels, w_dim=w_dim, resolution=resolution, conv_clamp=conv_clamp
        )
        self.num_conv += 1
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp)
        self.num_torgb += 1

    def forward(
        self,
        x: torch.Tensor | None,  # [N, in_channels, res/2, res/2] or None for the first block
        img: torch.Tensor
        | None,  # [N, img_channels, res/2, res/2] running skip image, None for the first block
        ws: torch.Tensor,  # [N, num_conv + num_torgb, w_dim]
        noise_mode: str = "random",
        fused_modconv: bool | None = None,  # None = fused in eval mode, per-layer scaling in training
    ) -> tuple[torch.Tensor, torch.Tensor]:
        _check_shape(ws, [None, self.num_conv + self.num_torgb, self.w_dim], f"b{self.resolution} ws")
        w_iter = iter(ws.unbind(dim=1))
        if fused_modconv is None:
            fused_modconv = not self.training
        if self.in_channels == 0:
            x = self.const.to(torch.float32).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
        else:
            assert x is not None
            _check_shape(
                x,
                [None, self.in_channels, self.resolution // 2, self.resolution // 2],
                f"b{self.resolution} x",
            )
            x = self.conv0(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused_modconv)
        x = self.conv1(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused_modconv)
        if img is not None:
            img = ops.upsample2d(img, self.resample_filter)
        y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv).to(torch.float32)
        img = img + y if img is not None else y
        return x, img


class SynthesisNetwork(torch.nn.Module):
    """ws [N, num_ws, w_dim] -> image [N, img_channels, res, res] through blocks b4 ... b{img_resolution}."""

    def __init__(
        self,
        w_dim: int,  # W dimensionality
        img_resolution: int,  # output resolution
        img_channels: int,  # colour channels
        channel_base: int = 32768,  # channels at r = min(channel_base // r, channel_max)
        channel_max: int = 512,  # cap on channels
        conv_clamp: float | None = None,  # clamp conv outputs to +-X
    ) -> None:
        super().__init__()
        _check_resolution(img_resolution)
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(np.log2(img_resolution))
        self.img_channels = img_channels
        self.block_resolutions = [2**i for i in range(2, self.img_resolution_log2 + 1)]
        channels = {res: channels_at(res, channel_base, channel_max) for res in self.block_resolutions}
        self.num_ws = 0
        for res in self.block_resolutions:
            in_channels = channels[res // 2] if res > 4 else 0
            is_last = res == img_resolution
            block = SynthesisBlock(
                in_channels,
                channels[res],
                w_dim=w_dim,
                resolution=res,
                img_channels=img_channels,
                is_last=is_last,
                conv_clamp=conv_clamp,
            )
            self.num_ws += block.num_conv
            if is_last:
                self.num_ws += block.num_torgb
            setattr(self, f"b{res}", block)

    def forward(
        self, ws: torch.Tensor, noise_mode: str = "random", fused_modconv: bool | None = None
    ) -> torch.Tensor:
        _check_shape(ws, [None, self.num_ws, self.w_dim], "synthesis ws")
        ws = ws.to(torch.float32)
        x = img = None
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            cur = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            w_idx += block.num_conv
            x, img = block(x, img, cur, noise_mode=noise_mode, fused_modconv=fused_modconv)
        assert img is not None
        return img


class Generator(torch.nn.Module):
    """Mapping + synthesis: z [N, z_dim] -> img [N, 3, R, R] in about [-1, 1]."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        self.z_dim = config.z_dim
        self.c_dim = config.c_dim
        self.w_dim = config.w_dim
        self.img_resolution = config.img_resolution
        self.img_channels = config.img_channels
        self.synthesis = SynthesisNetwork(
            w_dim=config.w_dim,
            img_resolution=config.img_resolution,
            img_channels=config.img_channels,
            channel_base=config.channel_base,
            channel_max=config.channel_max,
            conv_clamp=config.conv_clamp,
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(
            z_dim=config.z_dim,
            c_dim=config.c_dim,
            w_dim=config.w_dim,
            num_ws=self.num_ws,
            num_layers=config.mapping_layers,
            lr_multiplier=config.mapping_lr_multiplier,
            w_avg_beta=config.w_avg_beta,
        )

    def forward(
        self,
        z: torch.Tensor,  # [N, z_dim]
        c: torch.Tensor | None = None,  # [N, c_dim] or None
        truncation_psi: float = 1.0,  # 1 = none, 0 = the average face
        truncation_cutoff: int | None = None,  # truncate the first N ws only
        noise_mode: str = "random",  # 'random', 'const' or 'none'
        fused_modconv: bool | None = None,  # None = NVIDIA's default (fused outside training)
    ) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode, fused_modconv=fused_modconv)


def style_mix(ws_a: torch.Tensor, ws_b: torch.Tensor, cutoff: int) -> torch.Tensor:
    """Coarse styles (ws[:, :cutoff]) from `ws_a`, the rest from `ws_b`; both [N, num_ws, w_dim]."""
    if ws_a.shape != ws_b.shape:
        raise ValueError(f"style_mix: shapes differ {list(ws_a.shape)} vs {list(ws_b.shape)}")
    if not 0 <= cutoff <= ws_a.shape[1]:
        raise ValueError(f"style_mix: cutoff {cutoff} outside [0, {ws_a.shape[1]}]")
    return torch.cat([ws_a[:, :cutoff], ws_b[:, cutoff:]], dim=1)


class DiscriminatorBlock(torch.nn.Module):
    """One resolution of the resnet discriminator: [fromrgb], conv0, conv1 (down x2) + 1x1 skip (down x2)."""

    resample_filter: torch.Tensor

    def __init__(
        self,
        in_channels: int,  # input channels, 0 = first block (reads the image)
        tmp_channels: int,  # channels inside the block
        out_channels: int,  # output channels
        resolution: int,  # input resolution of this block
        img_channels: int,  # colour channels of the image
        activation: str = "lrelu",  # activation
        resample_filter: tuple[int, ...] = (1, 3, 3, 1),  # low-pass taps for downsampling
        conv_clamp: float | None = None,  # clamp conv outputs to +-X
    ) -> None:
        super().__init__()
        if in_channels not in (0, tmp_channels):
            raise ValueError(
                f"DiscriminatorBlock: in_channels must be 0 or {tmp_channels}, got {in_channels}"
            )
        self.in_channels = in_channels
        self.resolution = resolution
        self.img_channels = img_channels
        self.register_buffer("resample_filter", ops.setup_filter(resample_filter))
        if in_channels == 0:
            self.fromrgb = Conv2dLayer(
                img_channels, tmp_channels, 1, activation=activation, conv_clamp=conv_clamp
            )
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, activation=activation, conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(
            tmp_channels,
            out_channels,
            3,
            activation=activation,
            down=2,
            resample_filter=resample_filter,
            conv_clamp=conv_clamp,
        )
        self.skip = Conv2dLayer(
            tmp_channels, out_channels, 1, bias=False, down=2, resample_filter=resample_filter
        )

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None) -> tuple[torch.Tensor, None]:
        if self.in_channels == 0:
            assert img is not None
            _check_shape(
                img, [None, self.img_channels, self.resolution, self.resolution], "discriminator img"
            )
            x = self.fromrgb(img.to(torch.float32))
        assert x is not None
        y = self.skip(x, gain=math.sqrt(0.5))
        x = self.conv0(x)
        x = self.conv1(x, gain=math.sqrt(0.5))
        return y + x, None


class MinibatchStdLayer(torch.nn.Module):
    """Appends the mean standard deviation over groups of `group_size` samples as extra feature maps."""

    def __init__(self, group_size: int | None, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n) if self.group_size is not None else n
        if n % g:
            raise ValueError(f"minibatch-stddev: batch {n} is not divisible by group size {g}")
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)  # [G, n, F, c, H, W]
        y = y - y.mean(dim=0)
        y = (y.square().mean(dim=0) + 1e-8).sqrt()  # [n, F, c, H, W]
        y = y.mean(dim=[2, 3, 4]).reshape(-1, f, 1, 1)  # [n, F, 1, 1]
        y = y.repeat(g, 1, h, w)  # [N, F, H, W]
        return torch.cat([x, y], dim=1)


class DiscriminatorEpilogue(torch.nn.Module):
    """4x4 head: minibatch stddev, conv, dense, dense -> one logit per image."""

    def __init__(
        self,
        in_channels: int,  # input channels
        resolution: int,  # input resolution (4)
        mbstd_group_size: int | None = 4,  # minibatch-stddev group size, None = whole batch
        mbstd_num_channels: int = 1,  # minibatch-stddev features, 0 = disable
        activation: str = "lrelu",  # activation
        conv_clamp: float | None = None,  # clamp conv outputs to +-X
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.mbstd = (
            MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        )
        self.conv = Conv2dLayer(
            in_channels + mbstd_num_channels, in_channels, 3, activation=activation, conv_clamp=conv_clamp
        )
        self.fc = FullyConnectedLayer(in_channels * resolution**2, in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_shape(x, [None, self.in_channels, self.resolution, self.resolution], "epilogue input")
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        return self.out(x)


class Discriminator(torch.nn.Module):
    """Resnet discriminator: img [N, 3, R, R] -> logits [N, 1]."""

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        self.config = config
        self.img_resolution = config.img_resolution
        self.img_channels = config.img_channels
        if config.img_resolution < 8:
            raise ValueError(f"Discriminator needs img_resolution >= 8, got {config.img_resolution}")
        log2 = int(np.log2(config.img_resolution))
        self.block_resolutions = [2**i for i in range(log2, 2, -1)]
        channels = {
            res: channels_at(res, config.channel_base, config.channel_max)
            for res in [*self.block_resolutions, 4]
        }
        for res in self.block_resolutions:
            block = DiscriminatorBlock(
                channels[res] if res < config.img_resolution else 0,
                channels[res],
                channels[res // 2],
                resolution=res,
                img_channels=config.img_channels,
                conv_clamp=config.conv_clamp,
            )
            setattr(self, f"b{res}", block)
        self.b4 = DiscriminatorEpilogue(
            channels[4],
            resolution=4,
            mbstd_group_size=config.mbstd_group_size,
            mbstd_num_channels=config.mbstd_num_channels,
            conv_clamp=config.conv_clamp,
        )

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x: torch.Tensor | None = None
        img_in: torch.Tensor | None = img
        for res in self.block_resolutions:
            x, img_in = getattr(self, f"b{res}")(x, img_in)
        assert x is not None
        return self.b4(x)
