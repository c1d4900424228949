"""Fit the re-read correction of an iFADIT model by regression on rendered surrogates (flow and all else frozen).

Restore starts from the identity code the recognizer reads back from a published surrogate. That re-read is
biased and noisy: at 64 px the generator draws the leading identity directions faithfully and the later ones
shrunk (see docs/model.md, "Keyed rotation"), and a keyed rotation mixes the two, so the restored code
inherits the average error in every direction it turned. The correction is trained to undo that, the way phase
2's recoverability term asks, but from a fixed set of examples instead of a fresh render per step:

  pairs     for every training crop and each of `draws` random keys: the surrogate code F(z_id; c_k), its render
            (original attributes) rounded to uint8 as published, on odd draws also shifted and colour-jittered as
            paste-back and re-detection do, and the code the recognizer reads from it
  fit       Adam on the squared error, in descriptor units (what dlib's 0.6 measures), between
            correction(re-read) and the surrogate code; the faces are split into fit and held-out parts and the
            state with the lowest held-out error is kept (the correction overfits a few thousand faces within
            a few thousand steps)
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ifadit.models.ifadit.model import IfaditModel, uint8_levels
from ifadit.training.data import to_model_range
from ifadit.training.phase2 import augment_view, conditions, random_keys


@dataclass(frozen=True)
class CorrectionPairs:
    """Re-read codes and the surrogate codes they were rendered from, with the index of the face of each row."""

    reread: torch.Tensor  # [N, id_dim]
    target: torch.Tensor  # [N, id_dim]
    face: torch.Tensor  # [N] int64


@dataclass(frozen=True)
class CorrectionFit:
    """Held-out error (median descriptor distance) before and after the fit, and the step that was kept."""

    heldout_before: float
    heldout_after: float
    best_step: int
    fit_pairs: int
    heldout_pairs: int


def correction_pairs(
    model: IfaditModel,
    crops: torch.Tensor,
    draws: int,
    model_id: str,
    seed: int = 0,
    shift: int = 2,
    jitter: float = 0.1,
    batch: int = 64,
    on_batch: Callable[[int], None] | None = None,
) -> CorrectionPairs:
    """Pairs from uint8 NCHW `crops` under `draws` random keys each (keys from `seed`; see the module notes)."""
    if draws < 1:
        raise ValueError(f"draws must be at least 1, got {draws}")
    generator_state = torch.get_rng_state()
    torch.manual_seed(seed)
    size = model.config.flow.condition_size
    reread, target, face = [], [], []
    try:
        with torch.no_grad():
            for draw in range(draws):
                for start in range(0, len(crops), batch):
                    x = to_model_range(crops[start : start + batch])
                    z_id, z_attr = model.encode(x)
                    surrogate = model.surrogate(z_id, conditions(random_keys(len(x)), size, model_id))
                    published = uint8_levels(model.render(surrogate, z_attr))
                    if draw % 2:
                        published = augment_view(published, shift, jitter)
                    reread.append(model.standardise(model.descriptor(published)))
                    target.append(surrogate)
                    face.append(torch.arange(start, start + len(x)))
                    if on_batch is not None:
                        on_batch(len(x))
    finally:
        torch.set_rng_state(generator_state)
    return CorrectionPairs(torch.cat(reread), torch.cat(target), torch.cat(face))


def _median_error(
    correction: nn.Module, reread: torch.Tensor, target: torch.Tensor, scale: torch.Tensor
) -> float:
    with torch.no_grad():
        return float(((correction(reread) - target) * scale).norm(dim=1).median())


def fit_correction(
    model: IfaditModel,
    pairs: CorrectionPairs,
    steps: int = 3000,
    lr: float = 1e-3,
    batch: int = 256,
    heldout_every: int = 10,
    check_every: int = 100,
    seed: int = 0,
) -> CorrectionFit:
    """Train `model.correction` in place on `pairs`; faces with index % `heldout_every` == 0 are held out."""
    heldout = pairs.face % heldout_every == 0
    if heldout.all() or not heldout.any():
        raise ValueError(f"need faces on both sides of the held-out split (every {heldout_every}th face)")
    fit_x, fit_y = pairs.reread[~heldout], pairs.target[~heldout]
    held_x, held_y = pairs.reread[heldout], pairs.target[heldout]
    scale = model.id_std  # standardised codes -> descriptor units
    correction = model.correction
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(correction.parameters(), lr=lr)
    correction.eval()
    before = best = _median_error(correction, held_x, held_y, scale)
    best_state, best_step = copy.deepcopy(correction.state_dict()), 0
    for step in range(1, steps + 1):
        correction.train()
        rows = torch.randint(0, len(fit_x), (batch,), generator=generator)
        loss = (((correction(fit_x[rows]) - fit_y[rows]) * scale) ** 2).sum(1).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % check_every == 0 or step == steps:
            correction.eval()
            error = _median_error(correction, held_x, held_y, scale)
            if error < best:
                best, best_state, best_step = error, copy.deepcopy(correction.state_dict()), step
    correction.load_state_dict(best_state)
    correction.eval()
    return CorrectionFit(before, best, best_step, len(fit_x), len(held_x))
