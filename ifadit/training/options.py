"""Run options of the training loops (generator, iFADIT phases 1 and 2, ID²Face), reading them back from a run
folder, and `RunControl`, how any of them is driven. No torch import: the CLI builds its option defaults from
these classes at start-up.

Every loop has the same entry point: `train_<model>(options, control=None, ...) -> state` (`loop.train_generator`,
`phase1.train_phase1`, `phase2.train_phase2`, `id2face.train_id2face`); what follows `control` is that loop's
own (a stand-in recognizer for tests, an alignment progress callback)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ifadit.errors import InputError
from ifadit.models.recognizer_names import DLIB_THRESHOLD, TORCH_DLIB

DLIB_FEATURE_LAYERS = ("blocks.2", "blocks.6", "blocks.9")  # dlib ResNet: 32 ch @ 35 px, 64 @ 18, 128 @ 9
OnStep = Callable[[int, dict[str, float]], None]  # (step, that step's stats), after every step


@dataclass(frozen=True)
class RunControl:
    """How a training run is driven, the same for every `train_*` function. Not saved with the run (options.json
    holds what defines it), so a resumed run may change any of these."""

    resume: bool = False  # continue the run in `options.out` from its newest checkpoint
    on_step: OnStep | None = None  # progress callback
    threads: int | None = None  # torch's intra-op CPU threads (None: torch's; 1 is fastest on a shared CPU)
    device: str = "cpu"  # where the networks run ('cpu', 'cuda'); checkpoints hold CPU tensors
    clock: Callable[[], float] = time.monotonic  # wall-clock source of step times and checkpoint intervals


@dataclass(frozen=True)
class TrainOptions:
    """Everything that defines a generator training run (saved as options.json)."""

    data: str  # .npz crop cache, or a folder of face photos (aligned once into the run folder)
    out: str  # run folder
    resolution: int = 64  # image size in px
    batch: int = 16  # images per step
    steps: int | None = None  # stop after this many steps in total, None = run until interrupted
    seed: int = 0  # seeds torch's global generator and the sample-grid latents
    name: str = "stylegan2-celeba"  # checkpoint name (model id prefix)
    z_dim: int = 256  # latent Z size
    w_dim: int = 256  # latent W size
    mapping_layers: int = 2  # mapping network depth
    channel_base: int = 2048  # channels at r = min(channel_base // r, channel_max), G (and D unless d_*)
    channel_max: int = 128  # cap on channels, G and D
    d_channel_base: int | None = None  # D's channel_base when it differs from G's (None = channel_base)
    d_channel_max: int | None = None  # D's channel_max when it differs from G's (None = channel_max)
    lr: float = 0.0025  # Adam learning rate of G and D
    r1_gamma: float = 0.1  # R1 weight, 0 = off
    r1_interval: int = 16  # lazy R1: every N steps
    pl_weight: float = 0.0  # path-length weight, 0 = off
    pl_interval: int = 4  # lazy path length: every N steps
    style_mixing: float = 0.9  # probability of mixing two latents in a training batch
    mirror: bool = True  # random x-flips of the reals (dataset mirroring)
    ada_target: float | None = 0.6  # ADA target for r_t, None = no augmentation
    ada_interval: int = 4  # steps between ADA adjustments
    ada_kimg: float = 100.0  # kimg for the ADA probability to move 0 -> 1
    ema_kimg: float | None = None  # EMA half-life in kimg, None = batch * 10 / 32
    ema_rampup: float | None = 0.05  # EMA ramp-up (half-life <= nimg * rampup), None = off
    mbstd_group: int = 4  # minibatch-stddev group size
    fused_modconv: bool = True  # grouped modulated conv in training (faster on CPU, measured)
    log_every: int = 10  # steps per metrics line
    sample_every: int = 200  # steps per sample grid
    checkpoint_minutes: float = 5.0  # wall minutes between checkpoints
    keep_states: int = 2  # full training states kept (G_ema snapshots are all kept)
    grid: int = 8  # sample grid is grid x grid images
    noise_mode: str = "random"  # G's noise inputs in training: 'random', or 'none' as iFADIT renders
    init_generator: str | None = None  # generator folder G and G_ema start from (D starts fresh)
    d_warmup_steps: int = 0  # first steps train D only (G frozen): lets a fresh D catch up with a trained G
    identity_weight: float = 0.0  # weight of the identity-spread hinge on G (0 = off; torch dlib recognizer)
    identity_margin: float = 0.7  # dlib L2 distance the hinge asks of neighbouring samples (threshold 0.6)
    feature_d_weight: float = 0.0  # weight on G of the discriminator on dlib features (0 = off)
    feature_d_layers: tuple[str, ...] = DLIB_FEATURE_LAYERS  # dlib stages the feature discriminator scores


class LossWeights:
    """`loss_weights()` for options dataclasses whose `w_*` fields weight loss terms."""

    def loss_weights(self) -> dict[str, float]:
        """{term: weight} of the loss, from the `w_*` fields."""
        return {name[2:]: value for name, value in vars(self).items() if name.startswith("w_")}


@dataclass(frozen=True)
class Phase1Options(LossWeights):
    """Everything that defines a phase-1 run (saved as options.json)."""

    generator: str  # generator checkpoint folder (ifadit.models.stylegan2.checkpoint), frozen; with `init`, that folder
    data: str  # .npz crop cache at the generator's resolution
    out: str  # run folder
    init: str | None = (
        None  # iFADIT model folder to continue from (weights, statistics, architecture, generator)
    )
    init_model_id: str | None = None  # model id `init` held when the run started (set by train_phase1)
    swap_generator: str | None = None  # with `init`: a generator folder to render with instead of init's own
    batch: int = 8  # faces per step (each also swapped with its neighbour)
    steps: int | None = None  # stop after this many steps in total, None = until interrupted
    seed: int = 0  # seeds weights, batches and the sample grid
    name: str = "ifadit"  # model id prefix
    recognizer: str = TORCH_DLIB  # identity recognizer; tests inject a stand-in under another name
    id_dim: int = 128  # identity code size (the recognizer's descriptor size)
    attr_dim: int = 128  # attribute code size
    enc_channels: int = 32  # first conv width of E_attr
    mapper_hidden: int = 512  # hidden width of the mapper
    mapper_layers: int = 3  # linear layers of the mapper
    cond_dim: int = 64  # key condition size of the (phase-2) flow
    flow_blocks: int = 8  # coupling blocks of the flow
    flow_hidden: int = 256  # hidden width of the flow's subnets
    correction_hidden: int = 256  # hidden width of the re-read correction
    lr: float = 1e-4  # Adam learning rate
    mirror: bool = True  # random x-flips of the batch
    w_pixel: float = 1.0  # weight of pixel L1 (reconstruction)
    w_perceptual: float = 1.0  # weight of the recognizer-feature distance (reconstruction)
    w_identity: float = 1.0  # weight of 1 - cos(reconstruction, x)
    w_swap_identity: float = 1.0  # weight of 1 - cos(swap, y)
    w_coarse: float = 1.0  # weight of the 8x8 layout L1 between swap and x
    w_cycle: float = 0.1  # weight of ||E_attr(swap) - E_attr(x)||^2
    w_offset: float = 0.01  # weight of the mean squared W+ offset
    w_leak: float = 0.0  # weight of the hinge pushing the swap's descriptor ≥ threshold + margin from x's
    threshold: float = DLIB_THRESHOLD  # recognizer's same-person distance (for the leak term)
    margin: float = 0.1  # hinge margin above the threshold (for the leak term)
    feature_layers: tuple[str, ...] = DLIB_FEATURE_LAYERS  # recognizer submodules for the perceptual term
    stats_samples: int = 1024  # crops used to estimate the identity statistics
    log_every: int = 10  # steps per metrics line
    sample_every: int = 200  # steps per sample grid
    checkpoint_minutes: float = 5.0  # wall minutes between checkpoints
    keep_states: int = 2  # checkpoints kept
    grid: int = 8  # faces (rows) in the sample grid


@dataclass(frozen=True)
class Phase2Options(LossWeights):
    """Everything that defines a phase-2 run (saved as options.json)."""

    encoder: str  # phase-1 model folder, or a phase-1 run folder (its model/)
    data: str  # .npz crop cache at the model's resolution
    out: str  # run folder
    batch: int = 8  # faces per step
    steps: int | None = None  # stop after this many steps in total, None = until interrupted
    seed: int = 0  # seeds batches, keys, augmentation and the sample grid
    name: str = "ifadit"  # model id prefix
    lr: float = 1e-3  # Adam learning rate of the flow and the correction
    threshold: float = DLIB_THRESHOLD  # recognizer's same-person distance
    margin: float = 0.1  # hinge margin above the threshold
    shift: int = 2  # max px translation of the augmented views
    jitter: float = 0.1  # max relative brightness / contrast change of the views
    clip_grad: float = 1.0  # max gradient norm of a step (0 = off); the key-spread term diverges without it
    spread_keys: int = 8  # keys per face in the key-spread term
    spread_reference: int = 512  # real training codes the key-spread term compares each face's surrogates to
    w_anonymity: float = 1.0
    w_key_spread: float = 1.0
    w_diversity: float = 1.0
    w_naturalness: float = 1.0
    w_moments: float = 1.0
    w_recoverability: float = 1.0
    w_fidelity: float = 1.0
    w_wrong_key: float = 1.0
    w_consistency: float = 0.1
    log_every: int = 10  # steps per metrics line
    sample_every: int = 200  # steps per sample grid
    checkpoint_minutes: float = 5.0  # wall minutes between checkpoints
    keep_states: int = 2  # checkpoints kept
    grid: int = 8  # faces (rows) in the sample grid


@dataclass(frozen=True)
class Id2FaceOptions:
    """Everything that defines an ID²Face run (saved as options.json); steps count both phases."""

    data: str  # .npz crop cache at `resolution`
    out: str  # run folder
    resolution: int = 64  # crop size in px
    batch: int = 8  # faces per denoiser step (each gives two recomposed views)
    vae_batch: int = 64  # faces per identity-VAE step (each with its mirror image)
    vae_steps: int = 2000  # phase 1: identity-VAE steps; phase 2 (denoiser) follows
    steps: int | None = None  # stop after this many steps in total (both phases), None = until interrupted
    seed: int = 0  # seeds weights, batches, noise and the sample grid
    name: str = "id2face"  # model id prefix
    recognizer: str = TORCH_DLIB  # identity recognizer; tests inject a stand-in under another name
    id_dim: int = 128  # identity code size (the recognizer's descriptor size)
    id_latent: int = 32  # identity VAE latent size
    id_hidden: int = 256  # identity VAE MLP width
    attr_dim: int = 64  # attribute code size
    enc_channels: int = 32  # first conv width of the attribute encoder
    emb_dim: int = 256  # time / condition embedding width
    channels: tuple[int, ...] = (32, 64, 128, 128)  # denoiser widths per resolution level
    attention: bool = True  # self-attention in the denoiser bottleneck
    timesteps: int = 1000  # diffusion steps of the cosine schedule
    sample_steps: int = 25  # DDIM steps at inference (saved in the model config)
    guidance: float = 2.0  # classifier-free identity guidance at inference (saved in the model config)
    vae_lr: float = 1e-3  # Adam learning rate of the identity VAE
    lr: float = 2e-4  # Adam learning rate of encoder, harmonizer and denoiser
    ema_decay: float = 0.999  # moving average of the weights that samples and model/ use (0 = off)
    kl_weight: float = 0.01  # beta of the VAE's KL term
    w_cross: float = 1.0  # weight of the bidirectional cross-reconstruction (mirror <-> original)
    w_align: float = 1.0  # weight of the latent alignment of the two views' posterior means
    id_dropout: float = 0.1  # probability of a zero identity condition (classifier-free guidance)
    shift: int = 2  # max px translation of the augmented views
    jitter: float = 0.1  # max relative brightness / contrast change of the views
    stats_samples: int = 512  # crops used to estimate the identity mean
    log_every: int = 10  # steps per metrics line
    sample_every: int = 200  # steps per sample grid
    grid: int = 6  # faces (rows) in the sample grid
    grid_steps: int = 10  # DDIM steps of the sample grid (fewer than inference: grids are frequent)
    checkpoint_minutes: float = 5.0  # wall minutes between checkpoints
    keep_states: int = 2  # checkpoints kept


def generator_options(
    data: str,
    out: str,
    *,
    init_generator: str | None = None,
    channel_base: int | None = None,
    channel_max: int | None = None,
    ada_target: float | None = TrainOptions.ada_target,
    **fields: Any,
) -> TrainOptions:
    """A new generator run's options; `fields` are other `TrainOptions` fields (`z_dim` also sets `w_dim`).

    Channel widths left None take the defaults, or with `init_generator` (a generator checkpoint folder) that
    checkpoint's: its resolution, z_dim and mapping depth win, and a wider `channel_base` / `channel_max` starts
    from it widened (`loop.warm_start`). An `ada_target` <= 0 (or None) means x-flips only, no augmentation.
    """
    if init_generator is not None:
        from ifadit.models.stylegan2.checkpoint import read_config

        arch = read_config(Path(init_generator))["config"]
        fields.update(
            resolution=arch["img_resolution"], z_dim=arch["z_dim"], mapping_layers=arch["mapping_layers"]
        )
        channel_base = channel_base or arch["channel_base"]
        channel_max = channel_max or arch["channel_max"]
    z_dim = fields.pop("z_dim", TrainOptions.z_dim)
    return TrainOptions(
        data=data,
        out=out,
        z_dim=z_dim,
        w_dim=z_dim,
        channel_base=channel_base or TrainOptions.channel_base,
        channel_max=channel_max or TrainOptions.channel_max,
        ada_target=ada_target if ada_target is not None and ada_target > 0 else None,
        init_generator=init_generator,
        **fields,
    )


def read_options(out: Path) -> TrainOptions:
    """The options.json of an existing generator run folder."""
    data = read_options_json(out)
    data["feature_d_layers"] = tuple(data.get("feature_d_layers", DLIB_FEATURE_LAYERS))
    try:
        return TrainOptions(**data)
    except TypeError as exc:
        raise InputError(f"{Path(out) / 'options.json'}: not valid training options ({exc})") from None


def read_options_json(out: Path) -> dict[str, Any]:
    """options.json of an existing run folder, as a dict."""
    path = Path(out) / "options.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: missing, so {out} is not a run folder to resume") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: not a JSON object")
    return data


def read_phase1_options(out: Path) -> Phase1Options:
    data = read_options_json(out)
    data["feature_layers"] = tuple(data.get("feature_layers", DLIB_FEATURE_LAYERS))
    data.setdefault("w_leak", 0.0)  # runs saved before the leak term existed trained without it
    return Phase1Options(**data)


def read_phase2_options(out: Path) -> Phase2Options:
    data = read_options_json(out)
    data.setdefault("w_fidelity", 0.0)  # runs saved before the fidelity term existed trained without it
    data.setdefault("w_key_spread", 0.0)  # ... or the key-spread term
    data.setdefault("clip_grad", 0.0)  # ... or gradient clipping
    return Phase2Options(**data)


def latest_checkpoint(out: Path) -> Path | None:
    """Folder of the newest complete checkpoint in run folder `out` (from latest.json), None when there is none."""
    latest = Path(out) / "checkpoints" / "latest.json"
    return latest.parent / json.loads(latest.read_text())["path"] if latest.is_file() else None


def latest_step(out: Path) -> int:
    """Step of the newest checkpoint in run folder `out`, 0 when there is none."""
    latest = Path(out) / "checkpoints" / "latest.json"
    return int(json.loads(latest.read_text())["step"]) if latest.is_file() else 0


def read_id2face_options(out: Path) -> Id2FaceOptions:
    data = read_options_json(out)
    data["channels"] = tuple(data.get("channels", Id2FaceOptions.channels))
    try:
        return Id2FaceOptions(**data)
    except TypeError as exc:
        raise InputError(f"{Path(out) / 'options.json'}: not valid ID²Face options ({exc})") from None
