"""`ifadit train id2face`: train the ID²Face backend (identity VAE, then the conditional denoiser), resumable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ifadit.training.options import Id2FaceOptions, read_id2face_options
from ifadit_cli.training_run import (
    OUT_OPTION,
    RESUME_OPTION,
    THREADS_OPTION,
    checkpoint_minutes_option,
    device_option,
    steps_option,
    train_model_run,
)

_DEFAULTS = Id2FaceOptions(data="", out="")


@click.command("id2face")
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Aligned-crop cache (.npz) at --resolution (required for a new run).",
)
@OUT_OPTION
@RESUME_OPTION
@steps_option("Stop after this many steps in total.")
@click.option(
    "--vae-steps",
    type=int,
    default=_DEFAULTS.vae_steps,
    show_default=True,
    help="Steps of phase 1 (identity VAE on descriptors); the denoiser trains in the steps after them.",
)
@click.option(
    "--vae-batch",
    type=int,
    default=_DEFAULTS.vae_batch,
    show_default=True,
    help="Faces per identity-VAE step; each face and its mirror are embedded once, on first use.",
)
@click.option(
    "--resolution", type=int, default=_DEFAULTS.resolution, show_default=True, help="Crop size in px."
)
@click.option(
    "--batch",
    type=int,
    default=_DEFAULTS.batch,
    show_default=True,
    help="Faces per denoiser step (x2 views).",
)
@click.option(
    "--lr",
    type=float,
    default=_DEFAULTS.lr,
    show_default=True,
    help="Adam learning rate of the denoiser phase.",
)
@click.option(
    "--ema-decay",
    type=click.FloatRange(0.0, 1.0, max_open=True),
    default=_DEFAULTS.ema_decay,
    show_default=True,
    help="Decay of the weight average that sample grids and model/ hold (0 = the last weights).",
)
@click.option(
    "--seed", type=int, default=_DEFAULTS.seed, show_default=True, help="Seed of weights, batches and noise."
)
@click.option(
    "--sample-every",
    type=int,
    default=_DEFAULTS.sample_every,
    show_default=True,
    help="Steps between sample grids (source | reconstruction | 3 anonymized), phase 2 only.",
)
@checkpoint_minutes_option(_DEFAULTS.checkpoint_minutes)
@device_option()
@THREADS_OPTION
def train_id2face_command(**fields: Any) -> None:
    """Train the ID²Face anonymizer: identity VAE first, then attribute encoder, harmonizer and denoiser.

    The run's model/ folder is what `ifadit anonymize --backend id2face` loads from pretrained/id2face-64.

    \b
    Example:
      ifadit train id2face --data cache/celeba-train-64.npz --out runs/id2face64 --threads 1
      ifadit train id2face --out runs/id2face64 --resume --steps 100000
    """
    from ifadit.training.id2face import train_id2face  # torch loads here, not at every `ifadit` start-up

    train_model_run(train_id2face, read_id2face_options, Id2FaceOptions, _postfix, {}, **fields)


def _postfix(stats: dict[str, float]) -> dict[str, Any]:
    """The progress bar's phase (1: identity VAE, 2: denoiser) and loss."""
    return {"phase": int(stats["phase"]), "loss": f"{stats['loss']:.4f}"}
