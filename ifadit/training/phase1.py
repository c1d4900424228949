"""Phase 1, disentangling reconstruction: train E_attr and the mapper; generator and recognizer stay frozen.

Each step takes a batch x and pairs every face with the next one (y = x rolled by one) and renders
  reconstruction = G(M(z_id(x), E_attr(x)))   pixel L1 + perceptual (recognizer features) + identity cosine
  swap           = G(M(z_id(y), E_attr(x)))   identity cosine to y + coarse layout of x + E_attr(swap) ≈ E_attr(x)
                                             + (leak) a hinge keeping it a recognizer threshold away from x
plus a small penalty on the W+ offsets from w_avg. Identity statistics (descriptor mean/std) are estimated on
`stats_samples` training crops at the start of a run and saved with the model. Sample grid columns:
original | reconstruction | swap (identity of the next row) | next row's original.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ifadit.errors import InputError
from ifadit.models.dlib_resnet import load_dlib_resnet
from ifadit.models.ifadit.checkpoint import load_ifadit
from ifadit.models.ifadit.flow import FlowConfig
from ifadit.models.ifadit.model import RENDER_NOISE_MODE, TORCH_DLIB, IfaditConfig, IfaditModel
from ifadit.models.stylegan2.checkpoint import load_generator
from ifadit.training import ifadit_losses as L
from ifadit.training.cpu import controlled
from ifadit.training.data import load_crops, to_model_range
from ifadit.training.options import Phase1Options, RunControl
from ifadit.training.runner import (
    PhaseState,
    grid_image,
    load_state,
    prepare_run,
    random_batch,
    run_loop,
    save_state,
)
from ifadit.training.taps import FeatureTap


def build_model(
    options: Phase1Options, recognizer: nn.Module | None = None
) -> tuple[IfaditModel, str | None]:
    """(model, the model id it continues or None): a fresh model around the frozen generator, seeded from
    `options.seed`; with `options.init`, that iFADIT model in float32 (its architecture, generator, weights and
    identity statistics: training continues it) and its checked model id; with `options.swap_generator` as
    well, that model's parts around the other generator."""
    if options.init is not None:
        model, init_model_id, _ = load_ifadit(Path(options.init), recognizer)
        if options.swap_generator is not None:
            generator, _ = load_generator(Path(options.swap_generator))
            try:
                model = model.with_generator(generator)
            except ValueError as exc:
                raise InputError(f"{options.swap_generator}: {exc}") from None
        torch.manual_seed(options.seed)
        return model.float(), init_model_id
    generator, _ = load_generator(Path(options.generator))
    if recognizer is None:
        if options.recognizer != TORCH_DLIB:
            raise ValueError(f"recognizer {options.recognizer!r} must be passed in as a module")
        recognizer = load_dlib_resnet()
    flow = FlowConfig(options.id_dim, options.cond_dim, options.flow_blocks, options.flow_hidden)
    config = IfaditConfig.for_generator(
        generator.config,
        generator.num_ws,
        id_dim=options.id_dim,
        attr_dim=options.attr_dim,
        enc_channels=options.enc_channels,
        mapper_hidden=options.mapper_hidden,
        mapper_layers=options.mapper_layers,
        flow=flow,
        correction_hidden=options.correction_hidden,
        recognizer=options.recognizer,
    )
    torch.manual_seed(options.seed)
    np.random.seed(options.seed)  # FrEIA draws the flow's fixed rotations from numpy's global generator
    return IfaditModel(config, generator, recognizer), None


def real_descriptors(model: IfaditModel, crops: torch.Tensor, samples: int, seed: int) -> torch.Tensor:
    """Recognizer descriptors of up to `samples` crops (uint8 NCHW) chosen with `seed` (torch's global
    generator is left untouched)."""
    order = torch.randperm(len(crops), generator=torch.Generator().manual_seed(seed))[:samples]
    with torch.no_grad():
        device = model.id_mean.device
        return torch.cat([model.descriptor(to_model_range(crops[idx].to(device))) for idx in order.split(32)])


def identity_statistics(model: IfaditModel, crops: torch.Tensor, samples: int, seed: int) -> None:
    """Estimate and store descriptor mean/std on up to `samples` crops (uint8 NCHW) chosen with `seed`."""
    desc = real_descriptors(model, crops, samples, seed)
    model.set_identity_stats(desc.mean(0), desc.std(0) if len(desc) > 1 else torch.ones_like(desc[0]))


def phase1_losses(
    model: IfaditModel, tap: FeatureTap, x: torch.Tensor, options: Phase1Options
) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted phase-1 loss on images `x` [N,3,R,R] and its terms (as floats)."""
    with torch.no_grad():
        desc_x, feats_x = tap(x)
    z_id = model.standardise(desc_x)
    z_attr = model.encoder(x)
    offsets = model.mapper.offsets(torch.cat([z_id, z_id.roll(1, 0)]), torch.cat([z_attr, z_attr]))
    out = model.generator.synthesis(model.generator.mapping.w_avg + offsets, noise_mode=RENDER_NOISE_MODE)
    recon, swap = out.chunk(2)
    desc_out, feats_out = tap(out)
    desc_rec, desc_swap = desc_out.chunk(2)
    desc_y = desc_x.roll(1, 0)
    # Cosines of centred descriptors separate people far better than raw ones (docs/model.md, "Phase 1").
    mean = model.id_mean
    n = len(x)
    terms = {
        "pixel": L.pixel_loss(recon, x),
        "perceptual": L.perceptual_loss([f[:n] for f in feats_out], feats_x),
        "identity": L.identity_loss(desc_rec - mean, desc_x - mean),
        "swap_identity": L.identity_loss(desc_swap - mean, desc_y - mean),
        "coarse": L.coarse_loss(swap, x),
        "cycle": L.attribute_cycle_loss(model.encoder(swap), z_attr),
        "offset": L.offset_loss(offsets),
        "leak": L.anonymity_loss(desc_swap, desc_x, options.threshold, options.margin),
    }
    loss = sum((getattr(options, f"w_{k}") * v for k, v in terms.items()), torch.zeros([]))
    stats = {k: float(v.detach()) for k, v in terms.items()}
    stats["loss"] = float(loss.detach())
    stats["rec_dist"] = float((desc_rec - desc_x).norm(dim=1).mean().detach())
    stats["swap_dist"] = float((desc_swap - desc_y).norm(dim=1).mean().detach())
    stats["leak_dist"] = float((desc_swap - desc_x).norm(dim=1).mean().detach())
    return loss, stats


def phase1_step(
    state: PhaseState, tap: FeatureTap, batch_u8: torch.Tensor, options: Phase1Options
) -> dict[str, float]:
    """One Adam step of E_attr and the mapper on a uint8 NCHW batch."""
    x = to_model_range(batch_u8.to(state.model.id_mean.device))
    if options.mirror:
        flip = (torch.rand(len(x)) < 0.5).to(x.device)
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    state.model.train()
    loss, stats = phase1_losses(state.model, tap, x, options)
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    state.optimizer.step()
    return stats


def phase1_grid(model: IfaditModel, faces: torch.Tensor) -> np.ndarray:
    """original | reconstruction | swap (identity of the next row) | next row's original."""
    model.eval()
    with torch.no_grad():
        z_id, z_attr = model.encode(faces)
        out = model.render(torch.cat([z_id, z_id.roll(1, 0)]), torch.cat([z_attr, z_attr]))
    recon, swap = out.chunk(2)
    return grid_image([faces, recon, swap, faces.roll(1, 0)])


def grid_faces(crops: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """`count` fixed faces of the data (chosen with `seed`) as img in [-1, 1]."""
    idx = torch.randperm(len(crops), generator=torch.Generator().manual_seed(seed + 1_000_003))[:count]
    return to_model_range(crops[idx])


def train_phase1(
    options: Phase1Options, control: RunControl | None = None, recognizer: nn.Module | None = None
) -> PhaseState:
    """Train (or resume) phase 1 in `options.out`; returns the final state (checkpoints on the way).

    `control`: how the run is driven (`RunControl`); `recognizer`: a stand-in for the torch dlib recognizer.
    """
    with controlled(control) as run:
        resume, device = run.resume, run.device
        model, init_model_id = build_model(options, recognizer)
        model = model.to(device)
        if init_model_id is not None and not resume:  # the folder may later hold another model
            options = replace(options, init_model_id=init_model_id)
        crops = load_crops(Path(options.data), model.config.resolution)
        prepare_run(options, resume)
        learning = [*model.encoder.parameters(), *model.mapper.parameters()]
        state = PhaseState(model, torch.optim.Adam(learning, lr=options.lr, betas=(0.9, 0.99)))
        if resume:
            load_state(state, Path(options.out))
        elif options.init is None:  # an initial model brings its statistics
            identity_statistics(model, crops, options.stats_samples, options.seed)
            torch.manual_seed(options.seed)
        tap = FeatureTap(model.recognizer, options.feature_layers)
        faces = grid_faces(crops, options.grid, options.seed).to(device)
        run_loop(
            state,
            options,
            run,
            train_step=lambda: phase1_step(state, tap, random_batch(crops, options.batch), options),
            sample_grid=lambda: phase1_grid(model, faces),
            save=lambda: save_state(state, options),
        )
    return state
