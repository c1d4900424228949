"""The small trainable networks around the frozen recognizer and generator.

- `AttributeEncoder` E_attr: canonical crop `img` [N,3,R,R] -> attribute code `z_attr` [N, attr_dim] (pose,
  expression, light, background: everything the identity code does not carry).
- `Mapper` M: (z_id, z_attr) -> W+ `ws` [N, num_ws, w_dim] as offsets from the generator's `w_avg`.
- `ReadCorrection`: residual MLP that corrects a surrogate identity code re-read from rendered pixels before
  the keyed flow is inverted (re-reading identity from a generated face is never exact).

The last layer of the mapper and of the correction start at zero, so a fresh mapper renders the average face
and a fresh correction is the identity map.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class EncoderConfig:
    """Shape of the attribute encoder."""

    resolution: int = 64  # input crop side in px (power of two >= 8)
    attr_dim: int = 128  # attribute code size
    channels: int = 32  # channels of the first convolution, doubled at each halving
    channel_max: int = 256  # cap on channels

    def __post_init__(self) -> None:
        if self.resolution < 8 or self.resolution & (self.resolution - 1):
            raise ValueError(f"resolution must be a power of two >= 8, got {self.resolution}")


@dataclass(frozen=True)
class MapperConfig:
    """Shape of the mapper; `num_ws` and `w_dim` come from the generator."""

    num_ws: int  # W+ rows of the generator
    w_dim: int  # W size of the generator
    id_dim: int = 128  # identity code size
    attr_dim: int = 128  # attribute code size
    hidden: int = 512  # hidden width
    layers: int = 3  # linear layers (>= 2)

    def __post_init__(self) -> None:
        if self.layers < 2:
            raise ValueError(f"the mapper needs at least 2 layers, got {self.layers}")


def config_from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Build the frozen dataclass `cls` from a dict; unknown keys are a `ValueError` naming them."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown fields {unknown}")
    return cls(**data)


class AttributeEncoder(nn.Module):
    """Strided 3x3 convolutions down to 4x4, then a linear layer: img [N,3,R,R] -> z_attr [N, attr_dim]."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        ch = config.channels
        layers: list[nn.Module] = [nn.Conv2d(3, ch, 3, padding=1), nn.LeakyReLU(0.2)]
        res = config.resolution
        while res > 4:
            out = min(ch * 2, config.channel_max)
            layers += [nn.Conv2d(ch, out, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
            ch, res = out, res // 2
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Linear(ch * 16, config.attr_dim)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        r = self.config.resolution
        if img.ndim != 4 or tuple(img.shape[1:]) != (3, r, r):
            raise ValueError(f"expected img [N,3,{r},{r}], got {tuple(img.shape)}")
        return self.fc(self.convs(img).flatten(1))


def mlp(dims: list[int], *, zero_last: bool = True) -> nn.Sequential:
    """Linear layers of widths `dims` with SiLU between them; with `zero_last` the last layer starts at zero
    (the network then adds nothing at first, which keeps residual and offset heads stable early on)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(nn.SiLU())
    if zero_last:
        last = layers[-1]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
    return nn.Sequential(*layers)


class Mapper(nn.Module):
    """M(z_id, z_attr) -> ws = w_avg + offsets [N, num_ws, w_dim]."""

    def __init__(self, config: MapperConfig) -> None:
        super().__init__()
        self.config = config
        dims = [config.id_dim + config.attr_dim] + [config.hidden] * (config.layers - 1)
        self.net = mlp([*dims, config.num_ws * config.w_dim])

    def offsets(self, z_id: torch.Tensor, z_attr: torch.Tensor) -> torch.Tensor:
        """The W+ offsets from `w_avg` [N, num_ws, w_dim]."""
        c = self.config
        if z_id.shape[1:] != (c.id_dim,) or z_attr.shape[1:] != (c.attr_dim,) or len(z_id) != len(z_attr):
            raise ValueError(
                f"expected z_id [N,{c.id_dim}] and z_attr [N,{c.attr_dim}], "
                f"got {tuple(z_id.shape)} and {tuple(z_attr.shape)}"
            )
        return self.net(torch.cat([z_id, z_attr], dim=1)).view(-1, c.num_ws, c.w_dim)

    def forward(self, z_id: torch.Tensor, z_attr: torch.Tensor, w_avg: torch.Tensor) -> torch.Tensor:
        return w_avg.view(1, 1, -1) + self.offsets(z_id, z_attr)


class ReadCorrection(nn.Module):
    """z -> z + MLP(z) on identity codes [N, dim]; starts as the identity map."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.net = mlp([dim, hidden, hidden, dim])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z + self.net(z)
