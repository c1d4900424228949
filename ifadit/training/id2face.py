"""ID²Face training: identity VAE first, then attribute encoder + harmonizer + denoiser (resumable, one run folder).

The crop set has no identity labels, so a face and its mirror image are the "two images of one identity"
(their dlib descriptors differ: real pairs, not copies). Phase order, counted in one step counter:
  1. steps 1..vae_steps, identity VAE on descriptors only (the recognizer is frozen):
       u_a, u_b = unit codes of a face and its mirror;  rec_a, mu_a = VAE(u_a); rec_b, mu_b = VAE(u_b)
       loss = (1 - cos(rec_a, u_a)) + (1 - cos(rec_b, u_b))                       reconstruction
            + w_cross * ((1 - cos(rec_a, u_b)) + (1 - cos(rec_b, u_a)))           bidirectional cross-decoding
            + w_align * |mu_a - mu_b|^2                                           latent alignment of the pair
            + kl_weight * (KL_a + KL_b)
  2. later steps, the denoiser, attribute encoder and harmonizer (VAE frozen), recomposition-based:
       x_a, x_b = two augmented views (mirror / not, shift, colour jitter) of each face
       target x_b is denoised under (identity of view a through the VAE, attributes E_attr(x_b)), and target x_a
       under (identity of b, attributes of a): v-prediction MSE at random timesteps. The identity condition is
       zeroed with probability id_dropout, which trains the unconditional branch of classifier-free guidance.
Descriptors of each crop and its mirror are computed once, when a batch first needs them, and kept in the
training state (so a resumed run continues bit-exactly). As in diffusion and StyleGAN practice, an exponential
moving average of the weights (`ema_decay`, ramped up over the first denoiser steps) is what the sample grids
and the model folders hold; the raw training weights live in the checkpoint's state.pt. Sample grids (phase 2):
source | reconstruction | anonymized under 3 seeds. Run folder layout as `ifadit.training.runner` (model/ is
an ID²Face model folder).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ifadit.models.dlib_resnet import load_dlib_resnet
from ifadit.models.id2face.checkpoint import save_id2face
from ifadit.models.id2face.config import Id2FaceConfig
from ifadit.models.id2face.diffusion import add_noise, velocity
from ifadit.models.id2face.identity import identity_codes
from ifadit.models.id2face.model import Id2FaceModel
from ifadit.models.recognizer_model import RECOGNIZER_PREFIX
from ifadit.models.recognizer_names import TORCH_DLIB
from ifadit.training.cpu import controlled
from ifadit.training.data import load_crops, to_model_range
from ifadit.training.options import Id2FaceOptions, RunControl
from ifadit.training.phase1 import grid_faces
from ifadit.training.phase2 import augment_view
from ifadit.training.runner import (
    grid_image,
    prepare_run,
    read_checkpoint,
    run_loop,
    write_checkpoint,
)

GRID_SEEDS = (1, 2, 3)  # anonymization seeds of the sample grid's last three columns
CHUNK = 64  # crops per recognizer call when filling the descriptor cache


class DescriptorCache:
    """Recognizer descriptors of every crop (flip 0) and its mirror (flip 1), computed on first use."""

    def __init__(self, count: int, dim: int) -> None:
        self.values = torch.zeros(count, 2, dim)
        self.filled = torch.zeros(count, 2, dtype=torch.bool)

    def get(
        self,
        recognizer: nn.Module,
        crops: torch.Tensor,
        idx: torch.Tensor,
        flips: torch.Tensor,
        device: torch.device,
    ) -> torch.Tensor:
        """Descriptors [n, dim] (CPU) of crops[idx] (uint8 NCHW, CPU), mirrored where `flips` is 1; the
        recognizer runs on `device`."""
        todo = sorted({(int(i), int(f)) for i, f in zip(idx, flips, strict=True) if not self.filled[i, f]})
        for start in range(0, len(todo), CHUNK):
            part = torch.tensor(todo[start : start + CHUNK])
            img = to_model_range(crops[part[:, 0]]).to(device)
            img = torch.where(part[:, 1, None, None, None].bool().to(device), img.flip(3), img)
            with torch.no_grad():
                self.values[part[:, 0], part[:, 1]] = recognizer(img).float().cpu()
            self.filled[part[:, 0], part[:, 1]] = True
        return self.values[idx, flips]


@dataclass
class Id2FaceState:
    """Model, optimizers, descriptor cache and counters of a run."""

    model: Id2FaceModel
    vae_opt: torch.optim.Optimizer
    opt: torch.optim.Optimizer
    cache: DescriptorCache
    step: int = 0
    nimg: int = 0
    wall_seconds: float = 0.0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    ema: dict[str, torch.Tensor] = field(default_factory=dict)  # averaged weights (all but the recognizer)


def trained_tensors(model: Id2FaceModel) -> dict[str, torch.Tensor]:
    """The model's floating-point weights and buffers but the frozen recognizer's (what the average covers)."""
    return {
        k: v
        for k, v in model.state_dict().items()
        if v.is_floating_point() and not k.startswith(RECOGNIZER_PREFIX)
    }


def ema_decay(denoiser_steps: int, target: float) -> float:
    """Decay of the weight average after `denoiser_steps` denoiser steps: 0 (a copy) during the VAE phase,
    then min(target, (1 + n) / (10 + n)) so the average forgets the untrained start quickly."""
    return 0.0 if denoiser_steps <= 0 else min(target, (1 + denoiser_steps) / (10 + denoiser_steps))


def update_ema(state: Id2FaceState, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * weights, for every averaged tensor (decay 0: a copy)."""
    with torch.no_grad():
        for name, value in trained_tensors(state.model).items():
            if name not in state.ema or decay == 0.0:
                state.ema[name] = value.detach().clone()
            else:
                state.ema[name].lerp_(value.detach(), 1.0 - decay)


@contextmanager
def averaged_weights(state: Id2FaceState) -> Iterator[Id2FaceModel]:
    """The model holding the averaged weights inside the block, its training weights again after it."""
    raw = {k: v.detach().clone() for k, v in trained_tensors(state.model).items()}
    state.model.load_state_dict(state.ema or raw, strict=False)
    try:
        yield state.model
    finally:
        state.model.load_state_dict(raw, strict=False)


def model_config(options: Id2FaceOptions) -> Id2FaceConfig:
    """The architecture a run trains."""
    return Id2FaceConfig(
        resolution=options.resolution,
        id_dim=options.id_dim,
        id_latent=options.id_latent,
        id_hidden=options.id_hidden,
        attr_dim=options.attr_dim,
        enc_channels=options.enc_channels,
        emb_dim=options.emb_dim,
        channels=options.channels,
        attention=options.attention,
        timesteps=options.timesteps,
        sample_steps=options.sample_steps,
        guidance=options.guidance,
        recognizer=options.recognizer,
    )


def build_model(options: Id2FaceOptions, recognizer: nn.Module | None = None) -> Id2FaceModel:
    """A fresh model seeded from `options.seed`; `recognizer` defaults to the torch dlib ResNet."""
    if recognizer is None:
        if options.recognizer != TORCH_DLIB:
            raise ValueError(f"recognizer {options.recognizer!r} must be passed in as a module")
        recognizer = load_dlib_resnet()
    torch.manual_seed(options.seed)
    return Id2FaceModel(model_config(options), recognizer)


def _one_minus_cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (1 - F.cosine_similarity(a, b, dim=1)).mean()


def _kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Mean over samples of KL(N(mu, exp(logvar)) || N(0, I))."""
    return 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(1).mean()


def vae_losses(
    model: Id2FaceModel, u_a: torch.Tensor, u_b: torch.Tensor, options: Id2FaceOptions
) -> tuple[torch.Tensor, dict[str, float]]:
    """Phase-1 loss on paired unit identity codes [N, id_dim] (a face and its mirror) and its terms."""
    rec_a, mu_a, lv_a = model.vae(u_a)
    rec_b, mu_b, lv_b = model.vae(u_b)
    terms = {
        "vae_rec": _one_minus_cos(rec_a, u_a) + _one_minus_cos(rec_b, u_b),
        "vae_cross": _one_minus_cos(rec_a, u_b) + _one_minus_cos(rec_b, u_a),
        "vae_align": (mu_a - mu_b).square().sum(1).mean(),
        "vae_kl": _kl(mu_a, lv_a) + _kl(mu_b, lv_b),
    }
    weights = {
        "vae_rec": 1.0,
        "vae_cross": options.w_cross,
        "vae_align": options.w_align,
        "vae_kl": options.kl_weight,
    }
    loss = sum((weights[k] * v for k, v in terms.items()), torch.zeros([], device=u_a.device))
    stats = {k: float(v.detach()) for k, v in terms.items()}
    stats["loss"] = float(loss.detach())
    return loss, stats


def denoiser_losses(
    model: Id2FaceModel,
    x_a: torch.Tensor,
    x_b: torch.Tensor,
    u_a: torch.Tensor,
    u_b: torch.Tensor,
    options: Id2FaceOptions,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Phase-2 recomposition loss: x_b under (identity of a, attributes of b) and x_a under (b, a)."""
    with torch.no_grad():
        ids = model.vae.decode(model.vae.encode(torch.cat([u_a, u_b]))[0])
        v_a, v_b = ids.chunk(2)
    target = torch.cat([x_b, x_a])
    identity = torch.cat([v_a, v_b])
    keep = (torch.rand(len(identity)) >= options.id_dropout).to(identity.device)
    identity = identity * keep[:, None]
    t = torch.randint(0, options.timesteps, (len(target),)).to(target.device)
    noise = torch.randn(target.shape).to(target.device)
    x_t = add_noise(target, noise, model.alpha_bars[t])
    v, gate = model.predict(x_t, t, identity, model.encoder(target))
    loss = F.mse_loss(v, velocity(target, noise, model.alpha_bars[t]))
    return loss, {
        "loss": float(loss.detach()),
        "diffusion": float(loss.detach()),
        "gate": float(gate.detach().mean()),
    }


def train_step(state: Id2FaceState, crops: torch.Tensor, options: Id2FaceOptions) -> dict[str, float]:
    """One step of the phase `state.step` is in, on a batch drawn from `crops` (uint8 NCHW, CPU)."""
    model, device = state.model, state.device
    vae_phase = state.step < options.vae_steps
    count = options.vae_batch if vae_phase else options.batch
    idx = torch.randint(0, len(crops), (count,))
    flip_a = (torch.rand(count) < 0.5).long()
    flip_b = 1 - flip_a
    mean = model.id_mean
    u_a = identity_codes(state.cache.get(model.recognizer, crops, idx, flip_a, device).to(device), mean)
    u_b = identity_codes(state.cache.get(model.recognizer, crops, idx, flip_b, device).to(device), mean)
    model.train()
    if vae_phase:
        loss, stats = vae_losses(model, u_a, u_b, options)
        optimizer = state.vae_opt
    else:
        x = to_model_range(crops[idx].to(device))
        views = [
            torch.where(f.bool().to(device)[:, None, None, None], x.flip(3), x) for f in (flip_a, flip_b)
        ]
        x_a, x_b = (augment_view(v, options.shift, options.jitter) for v in views)
        loss, stats = denoiser_losses(model, x_a, x_b, u_a, u_b, options)
        optimizer = state.opt
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    update_ema(state, ema_decay(state.step + 1 - options.vae_steps, options.ema_decay))
    stats["phase"] = 1.0 if vae_phase else 2.0
    return stats


def sample_grid(model: Id2FaceModel, faces: torch.Tensor, steps: int) -> np.ndarray:
    """source | reconstruction | anonymized under each of GRID_SEEDS."""
    model.eval()
    with torch.no_grad():
        columns = [faces, model.reconstruct(faces, seed=0, steps=steps)]
        columns += [model.anonymize(faces, seed=seed, steps=steps) for seed in GRID_SEEDS]
    return grid_image(columns)


def _averaged_grid(state: Id2FaceState, faces: torch.Tensor, options: Id2FaceOptions) -> np.ndarray:
    with averaged_weights(state) as model:
        grid = sample_grid(model, faces, options.grid_steps)
    return grid


def estimate_identity_mean(state: Id2FaceState, crops: torch.Tensor, samples: int, seed: int) -> None:
    """Store the mean descriptor of up to `samples` crops and their mirrors (chosen with `seed`)."""
    idx = torch.randperm(len(crops), generator=torch.Generator().manual_seed(seed))[:samples]
    both = torch.cat([idx, idx])
    flips = torch.cat([torch.zeros(len(idx)), torch.ones(len(idx))]).long()
    descriptors = state.cache.get(state.model.recognizer, crops, both, flips, state.device)
    with torch.no_grad():
        state.model.id_mean.copy_(descriptors.mean(0))


def save_state(state: Id2FaceState, options: Id2FaceOptions) -> Path:
    """Write checkpoints/step-XXXXXXX/{model/ (averaged weights), state.pt (training weights, optimizers, ...),
    state.json}, point latest.json at it, refresh model/."""
    card = {
        "steps": state.step,
        "vae_steps": min(state.step, options.vae_steps),
        "kimg": state.nimg / 1000,
        "wall_seconds": round(state.wall_seconds, 1),
        "data": options.data,
    }
    extra = {
        "weights": {k: v.detach().clone() for k, v in trained_tensors(state.model).items()},
        "vae_opt": state.vae_opt.state_dict(),
        "opt": state.opt.state_dict(),
        "rng": torch.get_rng_state(),
        "cache_values": state.cache.values,
        "cache_filled": state.cache.filled,
    }
    return write_checkpoint(
        state,
        Path(options.out),
        options.keep_states,
        lambda folder: _save_averaged(state, folder, options.name, card),
        extra,
    )


def _save_averaged(state: Id2FaceState, folder: Path, name: str, card: dict[str, Any]) -> str:
    with averaged_weights(state) as model:
        return save_id2face(model, folder, name=name, card=card)


def load_state(state: Id2FaceState, out: Path) -> None:
    """Restore weights, average, optimizers, RNG, descriptor cache and counters from the newest checkpoint of
    `out` (a checkpoint written before averaging existed starts the average at its weights)."""
    extra = read_checkpoint(state, state.model, out, RECOGNIZER_PREFIX)
    state.ema = {k: v.detach().clone() for k, v in trained_tensors(state.model).items()}
    if "weights" in extra:
        state.model.load_state_dict(extra["weights"], strict=False)
    state.vae_opt.load_state_dict(extra["vae_opt"])
    state.opt.load_state_dict(extra["opt"])
    torch.set_rng_state(extra["rng"])
    state.cache.values, state.cache.filled = extra["cache_values"], extra["cache_filled"]


def train_id2face(
    options: Id2FaceOptions, control: RunControl | None = None, recognizer: nn.Module | None = None
) -> Id2FaceState:
    """Train (or resume) an ID²Face run in `options.out`; returns the final state (checkpoints on the way).

    `control`: how the run is driven (`RunControl`); `recognizer`: a stand-in for the torch dlib recognizer.
    """
    with controlled(control) as run:
        resume, device = run.resume, run.device
        model = build_model(options, recognizer).to(device)
        crops = load_crops(Path(options.data), options.resolution)
        prepare_run(options, resume)
        learning = [*model.encoder.parameters(), *model.harmonizer.parameters(), *model.denoiser.parameters()]
        state = Id2FaceState(
            model,
            torch.optim.Adam(model.vae.parameters(), lr=options.vae_lr),
            torch.optim.Adam(learning, lr=options.lr, betas=(0.9, 0.99)),
            DescriptorCache(len(crops), options.id_dim),
            device=torch.device(device),
        )
        if resume:
            load_state(state, Path(options.out))
        else:
            estimate_identity_mean(state, crops, options.stats_samples, options.seed)
            torch.manual_seed(options.seed)
        faces = grid_faces(crops, options.grid, options.seed).to(device)
        run_loop(
            state,
            options,
            run,
            train_step=lambda: train_step(state, crops, options),
            sample_grid=lambda: (
                _averaged_grid(state, faces, options) if state.step > options.vae_steps else None
            ),
            save=lambda: save_state(state, options),
            images=lambda stats: options.vae_batch if stats["phase"] == 1.0 else options.batch,
            exclude_sampling_time=True,
        )
    return state
