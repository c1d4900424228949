"""DPM-Solver++ steps, inversion and re-anchored regeneration against closed-form cases (no network)."""

from __future__ import annotations

import pytest
import torch

from ifadit.models.reverse_personalization.dpm_inversion import dpm_step, invert, make_grid, regenerate

ALPHAS_CUMPROD = torch.cumprod(
    1 - torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2, 0
)


def test_grid_spans_the_training_timesteps_and_lambda_decreases() -> None:
    grid = make_grid(ALPHAS_CUMPROD, 10)
    assert grid.steps == 10 and grid.timesteps[0] == 0 and grid.timesteps[-1] == 999
    assert bool((grid.lam[1:] < grid.lam[:-1]).all())
    assert torch.allclose(grid.alpha**2 + grid.sigma**2, torch.ones(11, dtype=torch.float64))
    with pytest.raises(ValueError, match="steps"):
        make_grid(ALPHAS_CUMPROD, 0)


@pytest.mark.parametrize(("a", "b"), [(3, 4), (4, 3), (0, 7)])
def test_a_step_with_the_true_clean_sample_stays_on_its_noise_path(a: int, b: int) -> None:
    # x_t = alpha_t x0 + sigma_t eps, fixed eps: a step given the exact x0 lands on x_b in either direction.
    grid = make_grid(ALPHAS_CUMPROD, 10)
    x0, eps = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x_a = grid.alpha[a] * x0 + grid.sigma[a] * eps
    x_b = dpm_step(grid, x_a, a, b, x0, x0, a - 1 if b > a else a + 1)
    assert torch.allclose(x_b, grid.alpha[b] * x0 + grid.sigma[b] * eps, atol=1e-12)


def test_second_order_term_uses_the_previous_prediction() -> None:
    grid = make_grid(ALPHAS_CUMPROD, 10)
    x, d, d_prev = torch.ones(1), torch.full((1,), 2.0), torch.full((1,), 1.0)
    assert not torch.equal(dpm_step(grid, x, 5, 4, d, d_prev, 6), dpm_step(grid, x, 5, 4, d, None, 6))


def _nonlinear(x: torch.Tensor, i: int) -> torch.Tensor:
    return torch.tanh(3 * x + 0.1 * i) - 0.5 * x  # a deliberately poor "denoiser": explicit inversion drifts


def test_regeneration_with_the_inversion_predictor_returns_the_start_exactly() -> None:
    grid = make_grid(ALPHAS_CUMPROD, 8)
    x0 = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    trajectory = invert(grid, x0, _nonlinear)
    assert len(trajectory.latents) == len(trajectory.predictions) == 9
    naive, d_prev = trajectory.latents[-1], None
    for i in range(8, 0, -1):  # plain sampling from the inverted noise, without the trajectory
        d = _nonlinear(naive.float(), i).double()
        naive, d_prev = dpm_step(grid, naive, i, i - 1, d, d_prev, i + 1), d
    assert (naive.float() - x0).abs().max() > 0.1
    assert torch.equal(regenerate(grid, trajectory, _nonlinear), x0)


def test_another_predictor_moves_the_result_deterministically() -> None:
    grid = make_grid(ALPHAS_CUMPROD, 8)
    x0 = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    trajectory = invert(grid, x0, _nonlinear)
    pushed = lambda x, i: _nonlinear(x, i) - 0.2  # noqa: E731
    first = regenerate(grid, trajectory, pushed)
    assert (first - x0).abs().mean() > 0.05 and torch.equal(first, regenerate(grid, trajectory, pushed))
