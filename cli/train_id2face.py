"""`ifadit train id2face`: train the ID²Face backend (identity VAE, then the conditional denoiser), resumable."""

from __future__ import annotations

import dataclasses
import signal
from pathlib import Path
from types import FrameType

import click
from tqdm import tqdm

from cli.lab import train_group
from ifadit.training.options import Id2FaceOptions, latest_step, read_id2face_options

_DEFAULTS = Id2FaceOptions(data="", out="")


def _interrupt_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """`kill PID` stops training like Ctrl-C: the loop writes a checkpoint first."""
    raise KeyboardInterrupt


@click.command("id2face")
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Aligned-crop cache (.npz) at --resolution (required for a new run).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Run folder (checkpoints, samples, metrics).",
)
@click.option("--resume", is_flag=True, help="Continue the run in --out (its options.json wins).")
@click.option(
    "--steps",
    type=int,
    default=None,
    show_default="until interrupted",
    help="Stop after this many steps in total.",
)
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
    "--seed", type=int, default=_DEFAULTS.seed, show_default=True, help="Seed of weights, batches and noise."
)
@click.option(
    "--sample-every",
    type=int,
    default=_DEFAULTS.sample_every,
    show_default=True,
    help="Steps between sample grids (source | reconstruction | 3 anonymized), phase 2 only.",
)
@click.option(
    "--checkpoint-minutes",
    type=float,
    default=_DEFAULTS.checkpoint_minutes,
    show_default=True,
    help="Wall minutes between checkpoints.",
)
@click.option(
    "--device",
    type=click.Choice(["cpu", "cuda"]),
    default="cpu",
    show_default=True,
    help="Where the networks run; checkpoints are CPU tensors, so a run may change device on resume.",
)
@click.option(
    "--threads",
    type=int,
    default=None,
    show_default="torch default",
    help="CPU threads; 1 is fastest on a CPU shared with other jobs.",
)
def train_id2face_command(
    data: Path | None,
    out: Path,
    resume: bool,
    steps: int | None,
    vae_steps: int,
    vae_batch: int,
    resolution: int,
    batch: int,
    lr: float,
    seed: int,
    sample_every: int,
    checkpoint_minutes: float,
    device: str,
    threads: int | None,
) -> None:
    """Train the ID²Face anonymizer: identity VAE first, then attribute encoder, harmonizer and denoiser.

    The run's model/ folder is what `ifadit anonymize --backend id2face` loads from pretrained/id2face-64.

    \b
    Example:
      ifadit train id2face --data cache/celeba-train-64.npz --out runs/id2face64 --threads 1
      ifadit train id2face --out runs/id2face64 --resume --steps 100000
    """
    if resume:
        options = dataclasses.replace(read_id2face_options(out), steps=steps)
    else:
        if data is None:
            raise click.UsageError("--data is required for a new run")
        options = Id2FaceOptions(
            data=str(data),
            out=str(out),
            resolution=resolution,
            batch=batch,
            vae_steps=vae_steps,
            vae_batch=vae_batch,
            steps=steps,
            seed=seed,
            lr=lr,
            sample_every=sample_every,
            checkpoint_minutes=checkpoint_minutes,
        )
    from ifadit.training.id2face import train_id2face  # torch loads here, not at every `ifadit` start-up

    bar = tqdm(
        total=options.steps, initial=latest_step(out) if resume else 0, unit="step", dynamic_ncols=True
    )

    def on_step(step: int, stats: dict[str, float]) -> None:
        bar.set_postfix(phase=int(stats["phase"]), loss=f"{stats['loss']:.4f}", refresh=False)
        bar.update(step - bar.n)

    previous = signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    try:
        with bar:
            state = train_id2face(options, resume=resume, on_step=on_step, threads=threads, device=device)
    finally:
        signal.signal(signal.SIGTERM, previous)
    click.echo(
        f"{options.out}: step {state.step}, {state.wall_seconds / 60:.1f} min; model in {options.out}/model"
    )


def register(group: click.Group) -> None:
    """Add `id2face` to the `train` group (registered on the root by `cli.lab`)."""
    train_group.add_command(train_id2face_command)
