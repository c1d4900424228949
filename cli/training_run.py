"""What the `ifadit train ...` commands share: their common options, new-or-resumed run options, the runner
that shows a progress bar and turns `kill PID` into a checkpointed stop, and `train_model_run`, the whole
command of a run that exports a model folder."""

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


def train_model_run(
    train: Callable[[Any, RunControl], Any],
    read: Callable[[Path], Any],
    make: Callable[..., Any],
    postfix: Callable[[dict[str, float]], dict[str, Any]],
    source: dict[str, Path | None],
    data: Path | None,
    out: Path,
    resume: bool,
    steps: int | None,
    device: str,
    threads: int | None,
    **fields: Any,
) -> None:
    """A run that exports a model folder (iFADIT phases, ID²Face): its options, new (`make`, after checking
    that `source`, the starting model if any, and `data` were given) or resumed (`read`), then `train` with a
    progress bar on stderr (`postfix(stats)` beside it) and a line saying where it stopped."""
    required = {**source, "data": data}
    options = run_options(
        read,
        lambda: make(**{k: str(v) for k, v in required.items()}, out=str(out), steps=steps, **fields),
        out,
        resume,
        steps,
        required,
    )
    control = RunControl(resume=resume, threads=threads, device=device)
    state = run_with_progress(train, options, control, postfix)
    click.echo(
        f"{options.out}: step {state.step}, {state.wall_seconds / 60:.1f} min; model in {options.out}/model"
    )
