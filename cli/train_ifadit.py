"""`ifadit train encoder` and `ifadit train flow`: the two iFADIT training phases (resumable, with progress)."""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click
from tqdm import tqdm

from cli.lab import train_group
from ifadit.training.options import (
    Phase1Options,
    Phase2Options,
    latest_step,
    read_phase1_options,
    read_phase2_options,
)

if TYPE_CHECKING:
    from ifadit.training.runner import PhaseState

_P1 = Phase1Options(generator="", data="", out="")
_P2 = Phase2Options(encoder="", data="", out="")


def _common(defaults: Phase1Options | Phase2Options) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options both phases share."""
    options = [
        click.option(
            "--data",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Aligned-crop cache (.npz) at the generator's resolution (required for a new run).",
        ),
        click.option(
            "--out",
            type=click.Path(path_type=Path),
            required=True,
            help="Run folder (checkpoints, samples, metrics).",
        ),
        click.option("--resume", is_flag=True, help="Continue the run in --out (its options.json wins)."),
        click.option(
            "--steps",
            type=int,
            default=None,
            show_default="until interrupted",
            help="Stop after this many steps.",
        ),
        click.option("--batch", type=int, default=defaults.batch, show_default=True, help="Faces per step."),
        click.option(
            "--seed",
            type=int,
            default=defaults.seed,
            show_default=True,
            help="Seed of weights, batches, keys.",
        ),
        click.option("--lr", type=float, default=defaults.lr, show_default=True, help="Adam learning rate."),
        click.option(
            "--sample-every",
            type=int,
            default=defaults.sample_every,
            show_default=True,
            help="Steps between sample grids.",
        ),
        click.option(
            "--checkpoint-minutes",
            type=float,
            default=defaults.checkpoint_minutes,
            show_default=True,
            help="Wall minutes between checkpoints.",
        ),
        click.option(
            "--device",
            type=click.Choice(["cpu", "cuda"]),
            default="cpu",
            show_default=True,
            help="Where the networks run; checkpoints are CPU tensors, so a run may change device on resume.",
        ),
        click.option(
            "--threads",
            type=int,
            default=None,
            show_default="torch default",
            help="CPU threads; 1 is fastest on a CPU shared with other jobs.",
        ),
    ]

    def apply(fn: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return apply


def _interrupt_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """`kill PID` stops training like Ctrl-C: the loop writes a checkpoint first."""
    raise KeyboardInterrupt


def _run(
    train: Callable[..., PhaseState], options: Any, resume: bool, threads: int | None, device: str
) -> None:
    """Run a phase with a progress bar on stderr, then print where it stopped."""
    start = latest_step(Path(options.out)) if resume else 0
    bar = tqdm(total=options.steps, initial=start, unit="step", dynamic_ncols=True)

    def on_step(step: int, stats: dict[str, float]) -> None:
        bar.set_postfix(loss=f"{stats['loss']:.3f}", refresh=False)
        bar.update(step - bar.n)

    previous = signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    try:
        with bar:
            state = train(options, resume=resume, on_step=on_step, threads=threads, device=device)
    finally:
        signal.signal(signal.SIGTERM, previous)
    click.echo(
        f"{options.out}: step {state.step}, {state.wall_seconds / 60:.1f} min; model in {options.out}/model"
    )


@click.command("encoder")
@click.option(
    "--generator",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Generator checkpoint folder (model.safetensors + config.json), kept frozen (required for a new run).",
)
@_common(_P1)
@click.option(
    "--stats-samples",
    type=int,
    default=_P1.stats_samples,
    show_default=True,
    help="Training crops used to estimate the identity-code statistics.",
)
def train_encoder(
    generator: Path | None,
    data: Path | None,
    out: Path,
    resume: bool,
    steps: int | None,
    batch: int,
    seed: int,
    lr: float,
    sample_every: int,
    checkpoint_minutes: float,
    device: str,
    threads: int | None,
    stats_samples: int,
) -> None:
    """Phase 1: train the attribute encoder and mapper around a frozen generator and dlib recognizer.

    \b
    Example:
      ifadit train encoder --generator runs/gen64/checkpoints/step-0020000/G_ema \\
        --data cache/celeba-train-64.npz --out runs/enc64 --threads 1
      ifadit train encoder --out runs/enc64 --resume --steps 20000
    """
    if resume:
        options = dataclasses.replace(read_phase1_options(out), steps=steps)
    else:
        if generator is None or data is None:
            raise click.UsageError("--generator and --data are required for a new run")
        options = Phase1Options(
            generator=str(generator),
            data=str(data),
            out=str(out),
            batch=batch,
            steps=steps,
            seed=seed,
            lr=lr,
            stats_samples=stats_samples,
            sample_every=sample_every,
            checkpoint_minutes=checkpoint_minutes,
        )
    from ifadit.training.phase1 import train_phase1  # torch loads here, not at every `ifadit` start-up

    _run(train_phase1, options, resume, threads, device)


@click.command("flow")
@click.option(
    "--encoder",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Phase-1 run folder (its model/) or model folder (required for a new run).",
)
@_common(_P2)
@click.option(
    "--margin",
    type=float,
    default=_P2.margin,
    show_default=True,
    help="Hinge margin above dlib's 0.6 threshold for anonymity, diversity and wrong-key distances.",
)
def train_flow(
    encoder: Path | None,
    data: Path | None,
    out: Path,
    resume: bool,
    steps: int | None,
    batch: int,
    seed: int,
    lr: float,
    sample_every: int,
    checkpoint_minutes: float,
    device: str,
    threads: int | None,
    margin: float,
) -> None:
    """Phase 2: train the key-conditioned flow and the re-read correction on random 256-bit keys.

    \b
    Example:
      ifadit train flow --encoder runs/enc64 --data cache/celeba-train-64.npz --out runs/flow64 --threads 1
      ifadit train flow --out runs/flow64 --resume --steps 20000
    """
    if resume:
        options = dataclasses.replace(read_phase2_options(out), steps=steps)
    else:
        if encoder is None or data is None:
            raise click.UsageError("--encoder and --data are required for a new run")
        options = Phase2Options(
            encoder=str(encoder),
            data=str(data),
            out=str(out),
            batch=batch,
            steps=steps,
            seed=seed,
            lr=lr,
            margin=margin,
            sample_every=sample_every,
            checkpoint_minutes=checkpoint_minutes,
        )
    from ifadit.training.phase2 import train_phase2  # torch and FrEIA load here, not at every start-up

    _run(train_phase2, options, resume, threads, device)


def register(group: click.Group) -> None:
    """Add `encoder` and `flow` to the `train` group (registered on the root by `cli.lab`)."""
    train_group.add_command(train_encoder)
    train_group.add_command(train_flow)
