"""`ifadit train generator`: train the StyleGAN2 decoder on aligned face crops (resumable, with progress)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from tqdm import tqdm

from ifadit.training.options import RunControl, TrainOptions, generator_options, read_options
from ifadit_cli.training_run import (
    OUT_OPTION,
    THREADS_OPTION,
    checkpoint_minutes_option,
    device_option,
    run_options,
    run_with_progress,
    steps_option,
)

if TYPE_CHECKING:
    from ifadit.training.loop import TrainState

_DEFAULTS = TrainOptions(data="", out="")


@click.command("generator")
@click.option(
    "--data",
    type=click.Path(exists=True, path_type=Path),
    help="Aligned-crop cache (.npz) or a folder of face photos (aligned once into --out).",
)
@OUT_OPTION
@click.option(
    "--resolution",
    type=int,
    default=_DEFAULTS.resolution,
    show_default=True,
    help="Image size in px (power of two).",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the run in --out from its newest checkpoint (its options.json wins).",
)
@steps_option("Stop after this many steps in total.")
@click.option(
    "--batch", type=int, default=_DEFAULTS.batch, show_default=True, help="Images per step (multiple of 4)."
)
@click.option(
    "--channel-base",
    type=click.IntRange(min=1),
    default=None,
    help=f"Channels at res r = min(base // r, max): width of G, and of D unless --d-channel-base is set "
    f"[default: {_DEFAULTS.channel_base}, or the --init-generator checkpoint's; a wider value widens it].",
)
@click.option(
    "--channel-max",
    type=click.IntRange(min=1),
    default=None,
    help=f"Cap on channels of any layer [default: {_DEFAULTS.channel_max}, or the --init-generator checkpoint's].",
)
@click.option(
    "--d-channel-base",
    type=click.IntRange(min=1),
    default=None,
    help="D's channel base when D should be wider than G (default: --channel-base); also with --init-generator, "
    "whose D starts fresh.",
)
@click.option(
    "--d-channel-max",
    type=click.IntRange(min=1),
    default=None,
    help="D's cap on channels (default: --channel-max).",
)
@click.option(
    "--ema-kimg",
    type=click.FloatRange(min=0.0, min_open=True),
    default=None,
    help="Half-life of G's moving average in thousands of images (default: batch * 10 / 32, i.e. 5 at batch 16, "
    "as stylegan2-ada-pytorch). A longer one smooths a warm start at a plateau.",
)
@click.option(
    "--z-dim",
    type=int,
    default=_DEFAULTS.z_dim,
    show_default=True,
    help="Latent Z size (W has the same size).",
)
@click.option(
    "--mapping-layers",
    type=int,
    default=_DEFAULTS.mapping_layers,
    show_default=True,
    help="Depth of the mapping network.",
)
@click.option(
    "--r1-gamma",
    type=float,
    default=_DEFAULTS.r1_gamma,
    show_default=True,
    help="R1 penalty weight (lazy, every 16 steps).",
)
@click.option(
    "--ada-target",
    type=float,
    default=_DEFAULTS.ada_target,
    show_default=True,
    help="ADA target for E[sign(D(real))]; augmentation starts only when D overfits. 0 = x-flips only.",
)
@click.option(
    "--noise-mode",
    type=click.Choice(["random", "none"]),
    default=_DEFAULTS.noise_mode,
    show_default=True,
    help="G's per-pixel noise inputs while training; 'none' trains G the way iFADIT renders (without noise).",
)
@click.option(
    "--init-generator",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Start G from this generator checkpoint folder (e.g. pretrained/stylegan2-celeba-64) with a fresh D; "
    "the architecture options come from the checkpoint, except a wider --channel-base / --channel-max, which "
    "starts from the checkpoint widened (same images at step 0, new channels to train).",
)
@click.option(
    "--d-warmup-steps",
    type=int,
    default=_DEFAULTS.d_warmup_steps,
    show_default=True,
    help="First steps train only D, so a fresh D catches up with a trained G (use with --init-generator).",
)
@click.option(
    "--lr",
    type=float,
    default=_DEFAULTS.lr,
    show_default=True,
    help="Adam learning rate of G and D (a warm start may want less).",
)
@click.option(
    "--identity-weight",
    type=click.FloatRange(min=0.0),
    default=_DEFAULTS.identity_weight,
    show_default=True,
    help="Weight of the identity-spread term: pushes generated faces that the torch dlib recognizer sees as "
    "one person apart (0 = off). A generator whose samples share few identities caps iFADIT's key diversity.",
)
@click.option(
    "--identity-margin",
    type=float,
    default=_DEFAULTS.identity_margin,
    show_default=True,
    help="dlib distance the identity-spread term asks between samples (dlib's same-person threshold is 0.6).",
)
@click.option(
    "--feature-d-weight",
    type=click.FloatRange(min=0.0),
    default=_DEFAULTS.feature_d_weight,
    show_default=True,
    help="Weight on G of a second discriminator: small heads that score the frozen torch dlib recognizer's "
    "feature maps of reals and fakes (Projected / Vision-aided GAN; 0 = off).",
)
@click.option(
    "--seed",
    type=int,
    default=_DEFAULTS.seed,
    show_default=True,
    help="Seed of weights, batches, noise and sample latents.",
)
@click.option(
    "--sample-every",
    type=int,
    default=_DEFAULTS.sample_every,
    show_default=True,
    help="Steps between sample grids.",
)
@checkpoint_minutes_option(_DEFAULTS.checkpoint_minutes)
@THREADS_OPTION
@device_option("Where the networks run; checkpoints are portable between devices.")
def train_generator(
    data: Path | None,
    out: Path,
    resume: bool,
    steps: int | None,
    init_generator: Path | None,
    threads: int | None,
    device: str,
    **fields: Any,
) -> None:
    """Train the StyleGAN2 face generator; checkpoints, sample grids and metrics.jsonl go to --out.

    \b
    Example:
      ifadit train generator --data cache/celeba-train-64.npz --resolution 64 --out runs/gen64 --threads 1
      ifadit train generator --out runs/gen64 --resume --steps 20000
      ifadit train generator --data cache/celeba-train-64.npz --out runs/gen64b \\
        --init-generator pretrained/stylegan2-celeba-64 --d-warmup-steps 300 --noise-mode none
    """
    options = run_options(
        read_options,
        lambda: generator_options(
            str(data),
            str(out),
            steps=steps,
            init_generator=None if init_generator is None else str(init_generator),
            **fields,
        ),
        out,
        resume,
        steps,
        required={"data": data},
    )
    control = RunControl(resume=resume, threads=threads, device=device)
    state = run_with_progress(_train_aligning, options, control, _losses)
    click.echo(
        f"{options.out}: step {state.step}, {state.nimg / 1000:.1f} kimg, {state.wall_seconds / 60:.1f} min"
    )


def _train_aligning(options: TrainOptions, control: RunControl) -> TrainState:
    """`ifadit.training.loop.train_generator`, with a progress bar while a folder of photos is aligned."""
    from ifadit.training.loop import train_generator as train  # torch loads here, not at every start-up

    with tqdm(unit="image", desc="aligning", leave=False, dynamic_ncols=True) as align_bar:

        def on_align(done: int, total: int) -> None:
            align_bar.total = total
            align_bar.update(done - align_bar.n)

        return train(options, control, on_align)


def _losses(stats: dict[str, float]) -> dict[str, str]:
    """The progress bar's G and D losses and ADA probability."""
    return {
        "G": f"{stats.get('loss_G', float('nan')):.2f}",
        "D": f"{stats['loss_D']:.2f}",
        "p": f"{stats.get('ada_p', 0):.2f}",
    }
