"""Resumable StyleGAN2 training loop: lazy regularization, EMA of G, ADA, JSON-lines metrics, sample grids.

Run folder layout (`TrainOptions.out`):
  options.json                       the options of the run (resume reads them back)
  metrics.jsonl                      one JSON object per `log_every` steps
  samples-latest.png, samples/step-XXXXXXX.png   G_ema on fixed latents (fixed noise, or none)
  checkpoints/latest.json            {"step": ..., "path": ...} of the newest complete checkpoint
  checkpoints/step-XXXXXXX/G_ema/    model.safetensors + config.json (`ifadit.models.stylegan2.checkpoint.load_generator`)
  checkpoints/step-XXXXXXX/{G,D}.safetensors, state.pt, state.json   full training state (newest `keep_states`;
                                     F.safetensors too with the feature discriminator)
All randomness comes from torch's global generator seeded once from `seed` and saved in every checkpoint, so
N steps in one go and N/2 + resume + N/2 give bit-identical weights on the same CPU.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ifadit.errors import InputError
from ifadit.models.dlib_resnet import load_dlib_resnet
from ifadit.models.model_folder import write_json
from ifadit.models.stylegan2.checkpoint import load_generator, save_generator
from ifadit.models.stylegan2.networks import (
    Discriminator,
    DiscriminatorConfig,
    Generator,
    GeneratorConfig,
    style_mix,
)
from ifadit.models.stylegan2.widen import widen_generator
from ifadit.training import losses
from ifadit.training.augment import AdaController, AugmentPipe
from ifadit.training.cpu import controlled
from ifadit.training.data import load_crops, prepare_crops, to_model_range
from ifadit.training.feature_discriminator import FeatureHeads, RecognizerFeatures
from ifadit.training.options import RunControl, TrainOptions, latest_checkpoint
from ifadit.training.runner import random_batch, run_loop


def generator_config(options: TrainOptions) -> GeneratorConfig:
    """Architecture of the run's generator."""
    return GeneratorConfig(
        img_resolution=options.resolution,
        z_dim=options.z_dim,
        w_dim=options.w_dim,
        mapping_layers=options.mapping_layers,
        channel_base=options.channel_base,
        channel_max=options.channel_max,
    )


def discriminator_config(options: TrainOptions) -> DiscriminatorConfig:
    """Architecture of the run's discriminator."""
    return DiscriminatorConfig(
        img_resolution=options.resolution,
        channel_base=options.d_channel_base or options.channel_base,
        channel_max=options.d_channel_max or options.channel_max,
        mbstd_group_size=options.mbstd_group,
    )


@dataclass
class TrainState:
    """Networks, optimizers and counters of a run."""

    G: Generator
    D: Discriminator
    G_ema: Generator
    opt_G: torch.optim.Adam
    opt_D: torch.optim.Adam
    augment: AugmentPipe
    ada: AdaController | None
    pl: losses.PathLengthRegularizer
    device: torch.device
    recognizer: nn.Module | None = None  # frozen dlib ResNet, for the identity spread and the feature D
    features: RecognizerFeatures | None = None  # the recognizer's tapped stages (feature_d_weight > 0)
    F: FeatureHeads | None = None  # heads of the feature discriminator (feature_d_weight > 0)
    opt_F: torch.optim.Adam | None = None
    step: int = 0
    nimg: int = 0
    wall_seconds: float = 0.0


def build_state(options: TrainOptions, device: str | torch.device = "cpu") -> TrainState:
    """Fresh networks and optimizers on `device`, seeded from `options.seed` (weights drawn on the CPU)."""
    torch.manual_seed(options.seed)
    device = torch.device(device)
    G = Generator(generator_config(options)).train().to(device)
    D = Discriminator(discriminator_config(options)).train().to(device)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)

    def adam(params: Any, interval: int) -> torch.optim.Adam:
        ratio = interval / (interval + 1) if interval > 0 else 1.0  # lazy regularization (StyleGAN2 App. C)
        return torch.optim.Adam(params, lr=options.lr * ratio, betas=(0.0, 0.99**ratio), eps=1e-8)

    g_interval = options.pl_interval if options.pl_weight > 0 else 0
    d_interval = options.r1_interval if options.r1_gamma > 0 else 0
    ada = None
    if options.ada_target is not None:
        ada = AdaController(
            target=options.ada_target, interval=options.ada_interval, speed_kimg=options.ada_kimg
        )
    recognizer = features = heads = None
    if options.identity_weight > 0 or options.feature_d_weight > 0:
        recognizer = load_dlib_resnet().eval().requires_grad_(False).to(device)
    if recognizer is not None and options.feature_d_weight > 0:
        features = RecognizerFeatures(recognizer, options.feature_d_layers)
        heads = FeatureHeads(features.channels).to(device).requires_grad_(False)
    return TrainState(
        G=G,
        D=D,
        G_ema=G_ema,
        opt_G=adam(G.parameters(), g_interval),
        opt_D=adam(D.parameters(), d_interval),
        augment=AugmentPipe().to(device),
        ada=ada,
        pl=losses.PathLengthRegularizer(device),
        device=device,
        recognizer=recognizer,
        features=features,
        F=heads,
        opt_F=adam(heads.parameters(), 0) if heads is not None else None,
    )


def warm_start(state: TrainState, folder: Path, seed: int = 0) -> None:
    """Start G and G_ema of a fresh run from the generator checkpoint in `folder` (D stays fresh).

    A run wider than the checkpoint starts from its function-preserving widening (new channels drawn from `seed`).
    InputError when the architectures differ in anything but a widening.
    """
    generator, _ = load_generator(folder)
    if generator.config != state.G.config:
        try:
            generator = widen_generator(generator, state.G.config, seed=seed)
        except InputError as exc:
            raise InputError(f"{folder}: {exc.args[0]}", hint=exc.hint) from None
    weights = generator.state_dict()
    state.G.load_state_dict(weights)
    state.G_ema.load_state_dict(weights)


def _generate(G: Generator, z: torch.Tensor, options: TrainOptions) -> tuple[torch.Tensor, torch.Tensor]:
    """G(z) with style mixing; returns (img, ws)."""
    ws = G.mapping(z)
    if options.style_mixing > 0 and float(torch.rand([])) < options.style_mixing:
        cutoff = int(torch.randint(1, ws.shape[1], []))
        ws = style_mix(ws, G.mapping(torch.randn_like(z), update_w_avg=False), cutoff)
    img = G.synthesis(ws, noise_mode=options.noise_mode, fused_modconv=options.fused_modconv)
    return img, ws


def _generator_step(state: TrainState, batch: int, options: TrainOptions, stats: dict[str, float]) -> None:
    """Steps 1-2 of `train_step`: the non-saturating G loss through the augmentation, lazy path length."""
    G, D, aug, device = state.G, state.D, state.augment, state.device
    G.requires_grad_(True)
    D.requires_grad_(False)
    img, _ = _generate(G, torch.randn(batch, G.z_dim).to(device), options)
    fake_logits = D(aug(img))
    loss_g = losses.g_nonsaturating(fake_logits)
    stats["loss_G"] = float(loss_g.detach())
    if state.recognizer is not None:  # one recognizer pass serves both terms
        descriptors, maps = _recognize(state, img)
        if options.identity_weight > 0:  # identity spread: neighbouring samples should be different people
            spread = losses.identity_spread(descriptors, options.identity_margin)
            loss_g = loss_g + options.identity_weight * spread
            stats["identity_spread"] = float(spread.detach())
        if state.F is not None:
            loss_f = sum((losses.g_nonsaturating(m) for m in state.F(maps)), torch.zeros([], device=device))
            loss_g = loss_g + options.feature_d_weight * loss_f
            stats["loss_G_feature"] = float(loss_f.detach())
    state.opt_G.zero_grad(set_to_none=True)
    loss_g.backward()
    state.opt_G.step()

    # 2. Lazy path-length regularization.
    if options.pl_weight > 0 and state.step % options.pl_interval == 0:
        img, ws = _generate(G, torch.randn(max(batch // 2, 1), G.z_dim).to(device), options)
        penalty = state.pl.penalty(img, ws)
        loss_pl = penalty.mean() * options.pl_weight * options.pl_interval
        state.opt_G.zero_grad(set_to_none=True)
        (img[:, 0, 0, 0] * 0 + loss_pl).mean().backward()
        state.opt_G.step()
        stats["pl_penalty"] = float(penalty.detach().mean())


def _recognize(state: TrainState, img: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The recognizer's descriptors of `img`, and its tapped feature maps when the feature D is on."""
    assert state.recognizer is not None
    if state.features is None:
        return state.recognizer(img), []
    return state.features(img)


def _feature_discriminator_step(
    state: TrainState, real: torch.Tensor, fake: torch.Tensor, stats: dict[str, float]
) -> None:
    """Logistic loss of the feature heads on the frozen recognizer's maps of reals and fakes (no augmentation)."""
    assert state.features is not None and state.F is not None and state.opt_F is not None
    with torch.no_grad():
        _, real_maps = state.features(real)
        _, fake_maps = state.features(fake)
    state.F.requires_grad_(True)
    pairs = zip(state.F(real_maps), state.F(fake_maps), strict=True)
    loss = sum((losses.d_logistic(r, f) for r, f in pairs), torch.zeros([], device=real.device))
    state.opt_F.zero_grad(set_to_none=True)
    loss.backward()
    state.opt_F.step()
    state.F.requires_grad_(False)
    stats["loss_D_feature"] = float(loss.detach())


def train_step(state: TrainState, reals_u8: torch.Tensor, options: TrainOptions) -> dict[str, float]:
    """One G step, one D step, lazy R1 / path length, EMA and ADA update. Returns the step's figures.

    During the first `options.d_warmup_steps` steps only D trains (and G_ema stays as it is).

    Latents, flips and augmentation parameters are drawn from the CPU generator whatever the device.
    """
    G, D, aug, device = state.G, state.D, state.augment, state.device
    batch = reals_u8.shape[0]
    real = to_model_range(reals_u8.to(device))
    if options.mirror:
        flip = (torch.rand(batch) < 0.5).to(device)
        real = torch.where(flip[:, None, None, None], real.flip(3), real)
    stats: dict[str, float] = {}

    warming_up = state.step < options.d_warmup_steps  # D catches up with a warm-started G first

    if not warming_up:
        _generator_step(state, batch, options, stats)

    # 3. Discriminator: logistic loss on fakes and reals.
    G.requires_grad_(False)
    D.requires_grad_(True)
    with torch.no_grad():
        img, _ = _generate(G, torch.randn(batch, G.z_dim).to(device), options)
    fake_logits = D(aug(img))
    real_logits = D(aug(real))
    if state.ada is not None:
        state.ada.accumulate(real_logits)
    loss_d = losses.d_logistic(real_logits, fake_logits)
    state.opt_D.zero_grad(set_to_none=True)
    loss_d.backward()
    state.opt_D.step()
    stats.update(
        loss_D=float(loss_d.detach()),
        real_logit=float(real_logits.detach().mean()),
        fake_logit=float(fake_logits.detach().mean()),
    )

    # 4. Lazy R1 on (augmented) reals.
    if options.r1_gamma > 0 and state.step % options.r1_interval == 0:
        real_r = real.detach().requires_grad_(True)
        logits = D(aug(real_r))
        penalty = losses.r1_penalty(real_r, logits)
        loss_r1 = penalty.mean() * (options.r1_gamma / 2) * options.r1_interval
        state.opt_D.zero_grad(set_to_none=True)
        (logits * 0 + loss_r1).mean().backward()
        state.opt_D.step()
        stats["r1_penalty"] = float(penalty.detach().mean())
    G.requires_grad_(False)
    D.requires_grad_(False)
    if state.F is not None:
        _feature_discriminator_step(state, real, img, stats)

    # 5. Exponential moving average of G.
    state.nimg += batch
    ema_nimg = (options.ema_kimg if options.ema_kimg is not None else batch * 10 / 32) * 1000
    if options.ema_rampup is not None:
        ema_nimg = min(ema_nimg, state.nimg * options.ema_rampup)
    beta = 0.5 ** (batch / max(ema_nimg, 1e-8))
    with torch.no_grad():
        for p_ema, p in zip(state.G_ema.parameters(), G.parameters(), strict=True):
            p_ema.copy_(p.lerp(p_ema, beta))
        for b_ema, b in zip(state.G_ema.buffers(), G.buffers(), strict=True):
            b_ema.copy_(b)

    # 6. ADA probability.
    if state.ada is not None:
        aug.p.fill_(state.ada.step(batch))
        stats.update(ada_p=state.ada.p, ada_rt=state.ada.last_rt)
    state.step += 1
    return stats


def _grid_noise(options: TrainOptions) -> str:
    """Sample grids use fixed noise ('const') when G trains with noise, none when it trains without."""
    return "none" if options.noise_mode == "none" else "const"


def sample_grid(G: Generator, options: TrainOptions) -> np.ndarray:
    """grid x grid images of G on the run's fixed latents, as one uint8 HxWx3 array."""
    n = options.grid
    z = torch.randn(n * n, G.z_dim, generator=torch.Generator().manual_seed(options.seed + 1_000_003))
    z = z.to(next(G.parameters()).device)
    with torch.no_grad():
        img = torch.cat(
            [G(z[i : i + 16], noise_mode=_grid_noise(options)) for i in range(0, n * n, 16)]
        ).cpu()
    img = ((img.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    r = options.resolution
    return img.reshape(n, n, 3, r, r).permute(0, 3, 1, 4, 2).reshape(n * r, n * r, 3).numpy()


def save_checkpoint(state: TrainState, options: TrainOptions) -> Path:
    """Write the full state under checkpoints/step-XXXXXXX (atomically) and point latest.json at it."""
    root = Path(options.out) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{state.step:07d}"
    tmp = root / f".tmp-step-{state.step:07d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_generator(state.G_ema, tmp / "G_ema", name=options.name)
    write_json(tmp / "D.json", {"kind": "stylegan2-discriminator", "config": state.D.config.to_dict()})
    nets: list[tuple[str, nn.Module]] = [("G", state.G), ("D", state.D)]
    if state.F is not None:
        nets.append(("F", state.F))
    for label, net in nets:
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()},
            str(tmp / f"{label}.safetensors"),
        )
    torch.save(
        {
            "opt_G": state.opt_G.state_dict(),
            "opt_D": state.opt_D.state_dict(),
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state() if state.device.type == "cuda" else None,
            "pl_mean": state.pl.pl_mean.cpu(),
            "opt_F": state.opt_F.state_dict() if state.opt_F is not None else None,
        },
        tmp / "state.pt",
    )
    info = {
        "step": state.step,
        "nimg": state.nimg,
        "kimg": state.nimg / 1000,
        "wall_seconds": state.wall_seconds,
        "ada": dataclasses.asdict(state.ada) if state.ada is not None else None,
    }
    write_json(tmp / "state.json", info)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    write_json(root / "latest.json", {"step": state.step, "path": final.name})
    _prune_states(root, options.keep_states)
    return final


def _prune_states(root: Path, keep: int) -> None:
    """Drop G, D and optimizer state from all but the newest `keep` checkpoints (G_ema stays)."""
    full = sorted(p for p in root.glob("step-*") if (p / "state.pt").exists())
    for old in full[: max(len(full) - keep, 0)]:
        for name in ("G.safetensors", "D.safetensors", "F.safetensors", "state.pt"):
            (old / name).unlink(missing_ok=True)


def load_checkpoint(state: TrainState, options: TrainOptions) -> None:
    """Restore `state` from the newest checkpoint of the run folder."""
    folder = latest_checkpoint(Path(options.out))
    if folder is None:
        latest = Path(options.out) / "checkpoints" / "latest.json"
        raise InputError(f"{latest}: missing, nothing to resume in {options.out}")
    state.G.load_state_dict(load_file(str(folder / "G.safetensors")))
    state.D.load_state_dict(load_file(str(folder / "D.safetensors")))
    state.G_ema.load_state_dict(load_file(str(folder / "G_ema" / "model.safetensors")))
    extra = torch.load(folder / "state.pt", weights_only=True)
    state.opt_G.load_state_dict(extra["opt_G"])
    state.opt_D.load_state_dict(extra["opt_D"])
    state.pl.pl_mean = extra["pl_mean"].to(state.device)
    if state.F is not None and state.opt_F is not None:
        heads = folder / "F.safetensors"
        if not heads.is_file() or extra.get("opt_F") is None:
            raise InputError(f"{heads}: missing, but the run's options ask for a feature discriminator")
        state.F.load_state_dict(load_file(str(heads)))
        state.opt_F.load_state_dict(extra["opt_F"])
    torch.set_rng_state(extra["rng"])
    if state.device.type == "cuda" and extra.get("cuda_rng") is not None:
        torch.cuda.set_rng_state(extra["cuda_rng"])
    info = json.loads((folder / "state.json").read_text())
    state.step, state.nimg, state.wall_seconds = info["step"], info["nimg"], info["wall_seconds"]
    if state.ada is not None and info["ada"] is not None:
        state.ada = AdaController(**info["ada"])
        state.augment.p.fill_(state.ada.p)


def train_generator(
    options: TrainOptions,
    control: RunControl | None = None,
    on_align: Callable[[int, int], None] | None = None,
) -> TrainState:
    """Train until `options.steps` (or KeyboardInterrupt), checkpointing on the way; returns the final state.

    `control` (default `RunControl()`): resume, progress, CPU threads (on a CPU shared with other jobs, one
    thread can be several times faster than two that wait on each other: docs/history/defaults.md), and the
    device (checkpoints are CPU tensors, so a run may change device on resume; bit-exact resume holds on the
    same device). A folder given as `options.data` is aligned once into `out/crops-<res>-<fingerprint>.npz`
    (`on_align(done, total)` reports progress).
    """
    with controlled(control) as run:
        # 1. The run folder, the crops, checked options and a new or resumed state.
        out = Path(options.out)
        (out / "samples").mkdir(parents=True, exist_ok=True)
        crops = load_crops(
            prepare_crops(Path(options.data), options.resolution, out, on_align),
            options.resolution,
        )
        _check_options(options)
        state = build_state(options, run.device)
        _start_or_resume(state, options, run.resume)
        write_json(out / "options.json", dataclasses.asdict(options))
        # 2. The loop: the step counts itself; metrics lines carry kimg.
        run_loop(
            state,
            options,
            run,
            train_step=lambda: train_step(state, random_batch(crops, options.batch), options),
            sample_grid=lambda: sample_grid(state.G_ema, options),
            save=lambda: save_checkpoint(state, options),
            counted=True,
            head=lambda: {"kimg": state.nimg / 1000},
        )
    return state


def _check_options(options: TrainOptions) -> None:
    """`InputError` for a batch that the minibatch-stddev group does not divide, or an unknown noise mode."""
    if options.batch % min(options.mbstd_group, options.batch):
        raise InputError(
            f"batch {options.batch} must be a multiple of the minibatch-stddev group {options.mbstd_group}"
        )
    if options.noise_mode not in ("random", "none"):
        raise InputError(f"noise_mode must be 'random' or 'none', got {options.noise_mode!r}")


def _start_or_resume(state: TrainState, options: TrainOptions, resume: bool) -> None:
    """Load the newest checkpoint (`resume`; `run_loop` drops metrics written after it), or start a new run in a
    folder without one, from a fresh metrics log (warm, with `options.init_generator`)."""
    out = Path(options.out)
    if resume:
        load_checkpoint(state, options)
        return
    if (out / "checkpoints" / "latest.json").exists():
        raise InputError(
            f"{out} already holds a run", hint="pass --resume to continue it or choose another --out"
        )
    (out / "metrics.jsonl").unlink(missing_ok=True)
    if options.init_generator is not None:
        warm_start(state, Path(options.init_generator), seed=options.seed)
