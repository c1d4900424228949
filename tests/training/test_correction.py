"""Re-read correction fitted by regression: pairs from renders under random keys, a held-out split, best state kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ifadit.training.correction import CorrectionPairs, correction_pairs, fit_correction
from tests.ifadit_support import astronaut_crops, tiny_model, to_img


@pytest.fixture(scope="module")
def crops(astronaut: np.ndarray) -> torch.Tensor:
    """12 uint8 NCHW astronaut crops at the tiny model's 16 px."""
    return torch.from_numpy(astronaut_crops(astronaut, 12)).permute(0, 3, 1, 2).contiguous()


def test_pairs_are_renders_under_fresh_keys_and_repeat_for_a_seed(crops: torch.Tensor) -> None:
    model = tiny_model()
    torch.manual_seed(123)
    before = torch.get_rng_state()
    pairs = correction_pairs(model, crops, draws=2, model_id="tiny-test", seed=5, batch=5)
    assert torch.equal(torch.get_rng_state(), before)  # the caller's random stream is left as it was
    assert pairs.reread.shape == pairs.target.shape == (24, model.config.flow.dim)
    assert pairs.face.tolist() == list(range(12)) * 2
    with torch.no_grad():
        z_id = model.encode(to_img(crops.permute(0, 2, 3, 1).numpy()))[0]
    assert not torch.allclose(pairs.target[:12], z_id, atol=1e-3)  # surrogates, not the faces' own codes
    assert not torch.allclose(pairs.target[:12], pairs.target[12:], atol=1e-3)  # each draw its own keys
    again = correction_pairs(model, crops, draws=2, model_id="tiny-test", seed=5, batch=5)
    assert torch.equal(again.reread, pairs.reread) and torch.equal(again.target, pairs.target)
    other = correction_pairs(model, crops, draws=1, model_id="tiny-test", seed=6)
    assert not torch.allclose(other.target, pairs.target[:12], atol=1e-3)
    with pytest.raises(ValueError, match="draws must be at least 1"):
        correction_pairs(model, crops, draws=0, model_id="tiny-test")


def test_fit_lowers_the_heldout_error_and_keeps_the_best_state(crops: torch.Tensor) -> None:
    model = tiny_model()
    pairs = correction_pairs(model, crops, draws=4, model_id="tiny-test", seed=1)
    fit = fit_correction(model, pairs, steps=300, lr=1e-3, batch=32, heldout_every=4, check_every=20)
    assert fit.heldout_after < fit.heldout_before and fit.best_step > 0
    held = pairs.face % 4 == 0
    assert (fit.fit_pairs, fit.heldout_pairs) == (int((~held).sum()), int(held.sum()))
    with torch.no_grad():
        error = ((model.correction(pairs.reread[held]) - pairs.target[held]) * model.id_std).norm(dim=1)
    assert float(error.median()) == pytest.approx(fit.heldout_after, rel=1e-6)
    assert not model.correction.training


def test_fit_refuses_a_split_with_nothing_held_out() -> None:
    model = tiny_model()
    codes = torch.randn(6, model.config.flow.dim)
    pairs = CorrectionPairs(codes, codes, torch.arange(6))
    with pytest.raises(ValueError, match="both sides of the held-out split"):
        fit_correction(model, pairs, steps=1, heldout_every=1)
