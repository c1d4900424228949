"""Deterministic DPM-Solver++(2M) inversion that keeps its latent trajectory, and regeneration along it.

Pure functions over a data-prediction callable `predict(x, i) -> x0_hat` (the model evaluated at grid
timestep i). The grid runs over K+1 training timesteps spread evenly from 0 to T-1 (index 0 is the latent
being inverted: its noise level at timestep 0 is sigma ~ 0.03 for SDXL, as in DDIM inversion). With
lambda = log(alpha / sigma) and h = lambda_b - lambda_a, one DPM-Solver++ step from index a to index b is

    x_b = (sigma_b / sigma_a) x_a - alpha_b (exp(-h) - 1) D,   D = d_a + (d_a - d_prev) / (2 r),

the second-order multistep correction with r = (lambda_a - lambda_prev) / h (first order, D = d_a, on the
first step). Inversion runs the same step with the grid reversed (h < 0), evaluating the model at the latent
it has (explicit inversion), and stores every latent x_0..x_K and every prediction d_0..d_K.

An explicit inversion is not an exact inverse. Regeneration therefore follows the trajectory: each sampling
step adds the residual that makes the same step under the inversion condition land exactly on the stored
latent (the error correction of edit-friendly / negative-prompt inversion, without optimisation):

    x'_{i-1} = step(x'_i, d'_i) + (x_{i-1} - step(x_i, d_i)).

Under the inversion condition this reproduces x_0 up to float rounding; a changed condition (negative
identity guidance, another prompt) moves the result by the accumulated difference of the guided steps.
The solver arithmetic and the stored trajectory are float64 (the model sees float32), so the re-anchored
steps cancel exactly and reconstruction is limited by the model's own determinism, not by rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

Predict = Callable[[torch.Tensor, int], torch.Tensor]  # (latent x at grid index i, i) -> data prediction


@dataclass(frozen=True)
class Grid:
    """Grid timesteps ascending in noise, and their alpha, sigma, lambda (float64, [K+1])."""

    timesteps: torch.Tensor  # int64 training timesteps, timesteps[0] == 0
    alpha: torch.Tensor  # sqrt(alphas_cumprod)
    sigma: torch.Tensor  # sqrt(1 - alphas_cumprod)
    lam: torch.Tensor  # log(alpha / sigma), decreasing

    @property
    def steps(self) -> int:
        return len(self.timesteps) - 1


@dataclass(frozen=True)
class Trajectory:
    """What inversion keeps: latents x_0..x_K and the data predictions d_0..d_K made at them (float64)."""

    latents: list[torch.Tensor]
    predictions: list[torch.Tensor]


def make_grid(alphas_cumprod: torch.Tensor, steps: int) -> Grid:
    """`steps` inversion steps over the scheduler's `alphas_cumprod` ([T] training timesteps)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    total = len(alphas_cumprod)
    if steps >= total:
        raise ValueError(f"steps must be < {total} training timesteps, got {steps}")
    timesteps = torch.linspace(0, total - 1, steps + 1, dtype=torch.float64).round().long()
    cumprod = alphas_cumprod.double()[timesteps]
    alpha, sigma = cumprod.sqrt(), (1 - cumprod).sqrt()
    return Grid(timesteps, alpha, sigma, torch.log(alpha / sigma))


def dpm_step(
    grid: Grid, x: torch.Tensor, a: int, b: int, d_a: torch.Tensor, d_prev: torch.Tensor | None, prev: int
) -> torch.Tensor:
    """One DPM-Solver++ step of `x` from grid index a to b with the prediction `d_a` at a; second order when
    the prediction `d_prev` at the previous index `prev` is given."""
    h = grid.lam[b] - grid.lam[a]
    d = d_a
    if d_prev is not None:
        r = (grid.lam[a] - grid.lam[prev]) / h
        d = d_a + (d_a - d_prev) * float(0.5 / r)
    return x * (grid.sigma[b] / grid.sigma[a]).item() - d * (grid.alpha[b] * torch.expm1(-h)).item()


def _predict64(predict: Predict, x: torch.Tensor, i: int) -> torch.Tensor:
    return predict(x.float(), i).double()


def invert(grid: Grid, x0: torch.Tensor, predict: Predict) -> Trajectory:
    """Run `x0` up the grid to pure noise (K model calls + 1 at the top), keeping the trajectory."""
    latents, predictions = [x0.double()], []
    for i in range(grid.steps):
        predictions.append(_predict64(predict, latents[i], i))
        previous = predictions[i - 1] if i > 0 else None
        latents.append(dpm_step(grid, latents[i], i, i + 1, predictions[i], previous, i - 1))
    predictions.append(_predict64(predict, latents[-1], grid.steps))
    return Trajectory(latents, predictions)


def regenerate(grid: Grid, trajectory: Trajectory, predict: Predict) -> torch.Tensor:
    """Sample from the trajectory's noise back to index 0 with `predict`, re-anchored to the trajectory
    at every step (K model calls); returns the regenerated x_0 (float32)."""
    latents, predictions, top = trajectory.latents, trajectory.predictions, grid.steps
    x, d_prev = latents[top], None
    for i in range(top, 0, -1):
        d = _predict64(predict, x, i)
        source_prev = predictions[i + 1] if i < top else None
        residual = latents[i - 1] - dpm_step(grid, latents[i], i, i - 1, predictions[i], source_prev, i + 1)
        x = dpm_step(grid, x, i, i - 1, d, d_prev, i + 1) + residual
        d_prev = d
    return x.float()
