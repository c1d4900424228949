"""What the `ifadit train ...` commands share: their common options, new-or-resumed run options, and the runner
that shows a progress bar and turns `kill PID` into a checkpointed stop."""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, TypeVar

import click
from tqdm import tqdm

from ifadit.training.options import RunControl, latest_step


class RunOptions(Protocol):
    """What the progress bar reads of a run's options."""

    @property
    def out(self) -> str: ...
    @property
    def steps(self) -> int | None: ...


T = TypeVar("T")
Opts = TypeVar("Opts", bound=RunOptions)
Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

OUT_OPTION = click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Run folder (checkpoints, samples, metrics).",
)
RESUME_OPTION = click.option(
    "--resume", is_flag=True, help="Continue the run in --out (its options.json wins)."
)
CHECKPOINT_HELP = "Wall minutes between checkpoints."
THREADS_OPTION = click.option(
    "--threads",
    type=int,
    default=None,
    show_default="torch default",
    help="CPU threads; 1 is fastest on a CPU shared with other jobs.",
)
PORTABLE_DEVICE_HELP = (
    "Where the networks run; checkpoints are CPU tensors, so a run may change device on resume."
)


def steps_option(help: str) -> Decorator:
    """--steps (None: until interrupted)."""
    return click.option("--steps", type=int, default=None, show_default="until interrupted", help=help)


def checkpoint_minutes_option(default: float) -> Decorator:
    """--checkpoint-minutes."""
    return click.option(
        "--checkpoint-minutes", type=float, default=default, show_default=True, help=CHECKPOINT_HELP
    )


def device_option(help: str = PORTABLE_DEVICE_HELP) -> Decorator:
    """--device cpu|cuda."""
    return click.option(
        "--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True, help=help
    )


def run_options(
    read: Callable[[Path], T],
    make: Callable[[], T],
    out: Path,
    resume: bool,
    steps: int | None,
    required: Mapping[str, object],
) -> T:
    """A resumed run's options (its options.json, with --steps) or a new run's (`make()`), after checking that
    the `required` options (name -> value) were given."""
    if resume:
        return dataclasses.replace(read(out), steps=steps)  # type: ignore[type-var]
    if any(value is None for value in required.values()):
        names = " and ".join(f"--{name.replace('_', '-')}" for name in required)
        raise click.UsageError(f"{names} {'is' if len(required) == 1 else 'are'} required for a new run")
    return make()


def _interrupt_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """`kill PID` stops training like Ctrl-C: the loop writes a checkpoint first."""
    raise KeyboardInterrupt


def run_with_progress(
    train: Callable[[Opts, RunControl], T],
    options: Opts,
    control: RunControl,
    postfix: Callable[[dict[str, float]], dict[str, Any]],
) -> T:
    """`train(options, control)`, the one signature of the `ifadit.training` loops, with a step progress bar on
    stderr (`postfix(stats)` beside it) as `control.on_step`; SIGTERM stops it like Ctrl-C, so the loop
    checkpoints first."""
    initial = latest_step(Path(options.out)) if control.resume else 0
    bar = tqdm(total=options.steps, initial=initial, unit="step", dynamic_ncols=True)

    def on_step(step: int, stats: dict[str, float]) -> None:
        bar.set_postfix(**postfix(stats), refresh=False)
        bar.update(step - bar.n)

    previous = signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    try:
        with bar:
            return train(options, dataclasses.replace(control, on_step=on_step))
    finally:
        signal.signal(signal.SIGTERM, previous)


def echo_model_run(out: str, step: int, wall_seconds: float) -> None:
    """The closing line of a run that exports a model folder."""
    click.echo(f"{out}: step {step}, {wall_seconds / 60:.1f} min; model in {out}/model")
