"""Pixel-space diffusion for ID²Face: a cosine noise schedule, forward noising, v-targets and a deterministic
DDIM sampler.

x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) eps (DDPM). The denoiser predicts the velocity
v = sqrt(a_t) eps - sqrt(1 - a_t) x_0 (Salimans & Ho 2022) rather than eps: the cosine schedule ends at
a_T ~ 0, where x_0 = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t) divides eps errors by ~0 and an eps-model's first
DDIM step is noise (docs/history/id2face.md has the comparison), while x_0 = sqrt(a_t) x_t - sqrt(1 - a_t) v
stays well posed at every noise level. Sampling runs DDIM with eta = 0 over `steps` evenly spaced timesteps, so the output is a
deterministic function of the starting noise and the condition; predicted x_0 is clipped to [-1, 1] at every
step.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

MAX_BETA = 0.999  # cap of the per-step noise of the cosine schedule (Nichol & Dhariwal 2021)


def cosine_alpha_bars(timesteps: int, offset: float = 0.008) -> torch.Tensor:
    """Cumulative signal fractions a_t [T] of the cosine schedule, t = 0..T-1, decreasing from ~1."""
    steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    f = torch.cos((steps + offset) / (1 + offset) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=MAX_BETA)
    return torch.cumprod(1 - betas, dim=0).to(torch.float32)


def _per_sample(alpha_bar: torch.Tensor) -> torch.Tensor:
    return alpha_bar[:, None, None, None]


def add_noise(x0: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """x_t for clean images x0 [N,3,R,R], noise like x0 and per-sample a_t [N]."""
    a = _per_sample(alpha_bar)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def velocity(x0: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """The denoiser's training target v = sqrt(a_t) noise - sqrt(1 - a_t) x0, per-sample a_t [N]."""
    a = _per_sample(alpha_bar)
    return a.sqrt() * noise - (1 - a).sqrt() * x0


def ddim_timesteps(timesteps: int, steps: int) -> list[int]:
    """`steps` timesteps from T-1 down to 0, evenly spaced."""
    return sorted({round(i * (timesteps - 1) / max(steps - 1, 1)) for i in range(steps)}, reverse=True)


def ddim_sample(
    v_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    noise: torch.Tensor,
    alpha_bars: torch.Tensor,
    steps: int,
) -> torch.Tensor:
    """Run DDIM (eta = 0) from `noise` [N,3,R,R]; `v_fn(x_t, t [N])` predicts the velocity. Returns x_0."""
    x = noise
    schedule = ddim_timesteps(len(alpha_bars), steps)
    for i, t in enumerate(schedule):
        a_t = alpha_bars[t]
        a_prev = alpha_bars[schedule[i + 1]] if i + 1 < len(schedule) else torch.ones_like(a_t)
        v = v_fn(x, torch.full((len(x),), t, device=x.device, dtype=torch.long))
        x0 = (a_t.sqrt() * x - (1 - a_t).sqrt() * v).clamp(-1, 1)
        eps = (x - a_t.sqrt() * x0) / (1 - a_t).sqrt()  # consistent with the clipped x0
        x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    return x
