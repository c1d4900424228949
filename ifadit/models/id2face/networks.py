"""The conditional parts of ID²Face: the soft-gating harmonizer and the small pixel-space UNet denoiser.

    t_emb = time_embed(t)                                      [N, emb]
    cond, gate = Harmonizer(u, z_attr, t_emb)                  gate in [0, 1]^emb, per sample and timestep
        cond = gate * id_proj(u) + (1 - gate) * attr_proj(z_attr)
    v = Denoiser(x_t, t_emb + cond)                            every residual block is FiLM-modulated by it

The gate decides, per channel of the condition and per noise level, how much of the condition comes from the
identity and how much from the attributes, so the denoiser can take layout from the attributes at high noise
and identity detail at low noise (or whatever training finds). A zero identity code is the "no identity"
condition of classifier-free guidance. Images are `img` [N, 3, R, R] in [-1, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

GROUPS = 8  # group-norm groups (channels are multiples of 8)


def timestep_features(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features [N, dim] of integer timesteps t [N]."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def _zero(conv: nn.Conv2d) -> None:
    """Start a residual branch's last layer at zero, so every block begins as the identity."""
    nn.init.zeros_(conv.weight)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


class Harmonizer(nn.Module):
    """Soft-gating fusion of identity and attribute conditions: (u, z_attr, t_emb) -> (cond, gate)."""

    def __init__(self, id_dim: int, attr_dim: int, emb_dim: int) -> None:
        super().__init__()
        self.id_proj = nn.Sequential(nn.Linear(id_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.attr_proj = nn.Sequential(nn.Linear(attr_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.gate = nn.Linear(3 * emb_dim, emb_dim)

    def forward(
        self, u: torch.Tensor, z_attr: torch.Tensor, t_emb: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h_id, h_attr = self.id_proj(u), self.attr_proj(z_attr)
        gate = torch.sigmoid(self.gate(torch.cat([h_id, h_attr, t_emb], dim=1)))
        return gate * h_id + (1 - gate) * h_attr, gate


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, FiLM (scale, shift) from the embedding in between, 1x1 shortcut."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(GROUPS, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.film = nn.Linear(emb_dim, 2 * out_ch)
        self.norm2 = nn.GroupNorm(GROUPS, out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        _zero(self.conv2)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        return self.skip(x) + self.conv2(F.silu(h))


class SelfAttention(nn.Module):
    """Single-head self-attention over the pixels of a small feature map, residual."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(GROUPS, ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.out = nn.Conv2d(ch, ch, 1)
        _zero(self.out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, c, h * w).transpose(2, 3).unbind(1)
        attended = F.scaled_dot_product_attention(q, k, v)  # [N, HW, C]
        return x + self.out(attended.transpose(1, 2).reshape(n, c, h, w))


class Denoiser(nn.Module):
    """UNet predicting the velocity v [N,3,R,R] of x_t (`diffusion`) given the embedding (time + condition)."""

    def __init__(self, channels: tuple[int, ...], emb_dim: int, attention: bool) -> None:
        super().__init__()
        self.emb_dim = emb_dim
        self.time_mlp = nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.stem = nn.Conv2d(3, channels[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        prev = channels[0]
        for i, ch in enumerate(channels):
            self.down.append(ResBlock(prev, ch, emb_dim))
            if i < len(channels) - 1:
                self.downsample.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
            prev = ch
        self.mid1 = ResBlock(prev, prev, emb_dim)
        self.attn: nn.Module = SelfAttention(prev) if attention else nn.Identity()
        self.mid2 = ResBlock(prev, prev, emb_dim)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(len(channels))):
            self.up.append(ResBlock(prev + channels[i], channels[i], emb_dim))
            prev = channels[i]
            if i > 0:
                self.upsample.append(nn.Conv2d(prev, prev, 3, padding=1))
        out_conv = nn.Conv2d(prev, 3, 3, padding=1)
        _zero(out_conv)
        self.head = nn.Sequential(nn.GroupNorm(GROUPS, prev), nn.SiLU(), out_conv)

    def time_embedding(self, t: torch.Tensor) -> torch.Tensor:
        """[N, emb_dim] embedding of integer timesteps t [N]."""
        return self.time_mlp(timestep_features(t, self.emb_dim))

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h, emb)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        h = self.mid2(self.attn(self.mid1(h, emb)), emb)
        for i, block in enumerate(self.up):
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
            if i < len(self.upsample):
                h = self.upsample[i](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        out: torch.Tensor = self.head(h)
        return out
