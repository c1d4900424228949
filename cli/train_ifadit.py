"""`ifadit train encoder` and `ifadit train flow`: the two iFADIT training phases (resumable, with progress)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ifadit.training.options import (
    Phase1Options,
    Phase2Options,
    read_phase1_options,
    read_phase2_options,
)
from ifadit_cli.training_run import (
    OUT_OPTION,
    RESUME_OPTION,
    THREADS_OPTION,
    Decorator,
    checkpoint_minutes_option,
    device_option,
    steps_option,
    train_model_run,
)

_P1 = Phase1Options(generator="", data="", out="")
_P2 = Phase2Options(encoder="", data="", out="")


def _weight_option(defaults: Phase1Options | Phase2Options) -> Decorator:
    """`--weight TERM=VALUE`, repeatable, over the phase's loss terms; the callback gives {"w_TERM": VALUE}
    and a usage error naming a bad pair."""
    terms = defaults.loss_weights()

    def parse(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, float]:
        weights: dict[str, float] = {}
        for pair in values:
            term, _, value = pair.partition("=")
            if term not in terms:
                raise click.BadParameter(f"{pair!r}: unknown term {term!r} (one of {', '.join(terms)})")
            try:
                weights[f"w_{term}"] = float(value)
            except ValueError:
                raise click.BadParameter(f"{pair!r}: the weight must be a number, as in {term}=2.0") from None
            if weights[f"w_{term}"] < 0:
                raise click.BadParameter(f"{pair!r}: a weight cannot be negative")
        return weights

    return click.option(
        "--weight",
        "weights",
        multiple=True,
        metavar="TERM=VALUE",
        callback=parse,
        help="Weight of one loss term, repeatable (defaults: "
        + ", ".join(f"{k}={v:g}" for k, v in terms.items())
        + ").",
    )


def _margin_option(defaults: Phase1Options | Phase2Options, hinges: str) -> Decorator:
    """`--margin`: the hinge margin above dlib's threshold for the phase's separation terms."""
    return click.option(
        "--margin",
        type=float,
        default=defaults.margin,
        show_default=True,
        help=f"Hinge margin above dlib's 0.6 threshold for {hinges}.",
    )


def _common(defaults: Phase1Options | Phase2Options) -> Decorator:
    """The options both phases share."""
    options: list[Decorator] = [
        click.option(
            "--data",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Aligned-crop cache (.npz) at the generator's resolution (required for a new run).",
        ),
        OUT_OPTION,
        RESUME_OPTION,
        steps_option("Stop after this many steps."),
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
        checkpoint_minutes_option(defaults.checkpoint_minutes),
        device_option(),
        THREADS_OPTION,
    ]

    def apply(fn: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return apply


def _loss(stats: dict[str, float]) -> dict[str, str]:
    """The progress bar's loss."""
    return {"loss": f"{stats['loss']:.3f}"}


@click.command("encoder")
@click.option(
    "--generator",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Generator checkpoint folder (model.safetensors + config.json), kept frozen (required for a new run); "
    "with --init, the generator to render with instead of the initial model's own.",
)
@click.option(
    "--init",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="iFADIT model folder to continue training from (e.g. pretrained/ifadit-64 or a run's model/): its "
    "weights, identity statistics, architecture and generator (unless --generator names another).",
)
@_common(_P1)
@click.option(
    "--stats-samples",
    type=int,
    default=_P1.stats_samples,
    show_default=True,
    help="Training crops used to estimate the identity-code statistics.",
)
@_margin_option(_P1, "the leak term's distance between a swap and its attribute source")
@_weight_option(_P1)
def train_encoder(
    generator: Path | None, init: Path | None, weights: dict[str, float], **common: Any
) -> None:
    """Phase 1: train the attribute encoder and mapper around a frozen generator and dlib recognizer.

    \b
    Example:
      ifadit train encoder --generator runs/gen64/checkpoints/step-0020000/G_ema \\
        --data cache/celeba-train-64.npz --out runs/enc64 --threads 1
      ifadit train encoder --out runs/enc64 --resume --steps 20000
      ifadit train encoder --init pretrained/ifadit-64 --data cache/celeba-train-64.npz --out runs/enc64b
      ifadit train encoder --init pretrained/ifadit-64 --generator pretrained/stylegan2-celeba-64 \\
        --data cache/celeba-train-64.npz --out runs/enc64g5 --weight leak=2 --margin 0.3
    """
    from ifadit.training.phase1 import train_phase1  # torch loads here, not at every start-up

    source = {"generator": generator if generator is not None else init}
    train_model_run(
        train_phase1,
        read_phase1_options,
        Phase1Options,
        _loss,
        source,
        init=None if init is None else str(init),
        swap_generator=None if init is None or generator is None else str(generator),
        **weights,
        **common,
    )


@click.command("flow")
@click.option(
    "--encoder",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Phase-1 run folder (its model/) or model folder (required for a new run).",
)
@_common(_P2)
@_margin_option(_P2, "anonymity, diversity and wrong-key distances")
@_weight_option(_P2)
def train_flow(encoder: Path | None, weights: dict[str, float], **common: Any) -> None:
    """Phase 2: train the key-conditioned flow and the re-read correction on random 256-bit keys.

    \b
    Example:
      ifadit train flow --encoder runs/enc64 --data cache/celeba-train-64.npz --out runs/flow64 --threads 1
      ifadit train flow --out runs/flow64 --resume --steps 20000
      ifadit train flow --encoder runs/enc64 --data cache/celeba-train-64.npz --out runs/flow64b \
        --weight recoverability=4 --weight fidelity=2
    """
    from ifadit.training.phase2 import train_phase2  # torch loads here, not at every start-up

    fields: dict[str, Any] = {**common, **weights}
    train_model_run(train_phase2, read_phase2_options, Phase2Options, _loss, {"encoder": encoder}, **fields)
