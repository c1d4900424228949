"""`ifadit eval`: measure anonymity, utility and speed (and recovery, wrong keys, attacks) of backends on a set
(`eval run`, also reached as plain `ifadit eval --data ...`), and print the results tables (`eval tables`)."""

from __future__ import annotations

from pathlib import Path

import click

from ifadit_cli.options import VaultArgs, file_option, json_option, usage_errors, vault_options

# the registry of ifadit.backends.base
BACKEND_CHOICES = ("blur", "pixelate", "mask", "ifadit", "id2face", "reverse-personalization")
RECOGNIZER_CHOICES = ("dlib", "torch-dlib", "faceres")


def model_folders(values: tuple[str, ...], backends: tuple[str, ...]) -> dict[str, Path]:
    """--model-dir values ("DIR" or "BACKEND=DIR") -> the folder of each evaluated backend that gets one."""
    from ifadit.backends.base import backend_parameters

    named: dict[str | None, Path] = {}
    for value in values:
        name, sep, folder = value.partition("=")
        if sep and name in BACKEND_CHOICES:
            named[name] = Path(folder)
        else:
            named[None] = Path(value)
    unused = sorted(name for name in named if name is not None and name not in backends)
    if unused:
        raise click.UsageError(f"--model-dir names {', '.join(unused)}, which is not evaluated (--backend)")
    folders = {name: folder for name, folder in named.items() if name is not None}
    if None in named:
        for name in backends:
            if name not in folders and "model_dir" in backend_parameters(name):
                folders[name] = named[None]
    return folders


class EvalGroup(click.Group):
    """`ifadit eval` runs `eval run` unless its first argument names a subcommand, so `ifadit eval --data ...`
    keeps working beside `ifadit eval tables`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group("eval", cls=EvalGroup)
def eval_group() -> None:
    """Measure backends on a face set (`eval run`, the default) and print results tables (`eval tables`).

    \b
    Example:
      ifadit eval --data ../shared/data/reid/dlib-johns --backend blur -o runs/eval-johns
      ifadit eval tables runs/eval-johns/metrics.json
    """


@eval_group.command("tables")
@click.argument(
    "metrics", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
def tables_command(metrics: tuple[Path, ...]) -> None:
    """Print the docs/results.md tables (Markdown) of `ifadit eval` reports, from their metrics.json files.

    \b
    Example:
      ifadit eval tables runs/eval/all-dlib-johns/metrics.json runs/eval/all-deepface/metrics.json
    """
    from ifadit.eval.tables import tables_for

    for path in metrics:
        click.echo(tables_for(path))


@eval_group.command("run")
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="Folder-per-identity set (<identity>/<image>), or a flat folder of unlabelled images (no rank-1); "
    "never one the model was trained on.",
)
@click.option(
    "--backend",
    "backends",
    type=click.Choice(BACKEND_CHOICES),
    multiple=True,
    required=True,
    help="Backend to evaluate; repeat to compare several in one report (e.g. --backend blur --backend mask).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Report folder: report.md, metrics.json and PNG plots are written there.",
)
@click.option(
    "--key",
    "key_handle",
    default=None,
    show_default="random keys only",
    help="Evaluate under this vault key (unsealed for use, audited); random keys are still drawn "
    "for the wrong-key and attack figures.",
)
@click.option(
    "--random-keys",
    type=click.IntRange(0),
    default=8,
    show_default=True,
    help="Random 32-byte keys drawn from --seed (no vault needed). Without --key the first one "
    "anonymizes; the others are wrong keys and attack keys. Reversible backends need 3 keys in all.",
)
@click.option(
    "--recognizer",
    "recognizers",
    type=click.Choice(RECOGNIZER_CHOICES),
    multiple=True,
    default=("dlib", "faceres"),
    show_default=True,
    help="Recognizers scoring anonymity (repeatable); faceres is independent of training.",
)
@click.option(
    "--limit",
    type=click.IntRange(2),
    default=None,
    show_default="all images",
    help="Use this many images spread evenly over the set (a quick run).",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of the random keys and the attack."
)
@click.option(
    "--attack-steps",
    type=click.IntRange(1),
    default=300,
    show_default=True,
    help="Training steps of the learned inversion attack (reversible backends).",
)
@click.option(
    "--model-dir",
    "model_dirs",
    metavar="[BACKEND=]DIR",
    multiple=True,
    show_default="each backend's own (ifadit: pretrained/ifadit-64)",
    help="Model folder of a model backend (ifadit, reverse-personalization: a local SDXL folder with an "
    "identity adapter, see docs/backends.md). DIR goes to every evaluated backend that takes a model folder, "
    "BACKEND=DIR to that one only; repeatable.",
)
@vault_options
@json_option
def eval_command(
    data: Path,
    backends: tuple[str, ...],
    output: Path,
    key_handle: str | None,
    random_keys: int,
    recognizers: tuple[str, ...],
    limit: int | None,
    seed: int,
    attack_steps: int,
    model_dirs: tuple[str, ...],
    vault_args: VaultArgs,
    as_json: bool,
) -> None:
    """Measure how well backends anonymize a face set, and what they cost.

    Anonymity (verification and rank-1 re-identification with each recognizer, chance beside it), utility
    (68-landmark error, head pose, detection rate, Fréchet distance), speed, and for reversible backends
    recovery, wrong keys, key diversity and three attacks. Writes report.md, metrics.json and plots to
    --output and prints the headline table. Definitions: docs/evaluation.md.

    \b
    Example:
      ifadit eval run --data ../shared/data/reid/dlib-johns --backend blur --backend mask -o runs/eval-johns
      ifadit eval --data faces/ --backend ifadit --key kh_3f09... --random-keys 16 -o runs/eval-ifadit
      ifadit eval --data faces/ --backend blur --backend reverse-personalization \\
          --model-dir reverse-personalization=models/sdxl-faceid -o runs/eval-rp
    """
    import json

    from ifadit.eval.report import headline_rows, render_table, write_report
    from ifadit.eval.run import EvalOptions, run_eval

    material = None
    if key_handle is not None and vault_args.remote:
        raise click.UsageError(
            "--key would unseal the key's material in this process, which a vault service never allows: "
            "evaluate with --random-keys, or against a local vault"
        )
    if key_handle is not None:
        from keyvault import keys

        with vault_args.open() as vault:
            material = keys.unseal_for_use(vault, key_handle, purpose="anonymize").material
    options = EvalOptions(data=data, limit=limit, seed=seed, attack_steps=attack_steps)
    progress = lambda message: click.echo(message, err=True)  # noqa: E731
    with usage_errors():
        folders = model_folders(model_dirs, backends)
        document, results = run_eval(
            options,
            backends,
            recognizers,
            random_keys,
            material,
            model_dir=folders.pop("ifadit", None),
            progress=progress,
            backend_options={name: {"model_dir": folder} for name, folder in folders.items()},
        )
    written = write_report(document, results, output)
    if as_json:
        click.echo(json.dumps(document, indent=2, sort_keys=True))
        return
    click.echo(render_table(headline_rows(document)))
    click.echo(f"report: {', '.join(str(p) for p in written)}")


@eval_group.command("sheet")
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="Folder-per-identity set (<identity>/<image>) whose photos go on the sheet; evaluation sets only.",
)
@click.option(
    "--count", type=click.IntRange(1), default=16, show_default=True, help="Photos (rows) on the sheet."
)
@click.option(
    "--seed",
    type=int,
    default=1,
    show_default=True,
    help="Seed of the two random keys: the first anonymizes and restores, the second is the wrong key.",
)
@click.option(
    "--model-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    show_default="pretrained/ifadit-64",
    help="iFADIT model folder.",
)
@file_option(
    "-o",
    "--output",
    required=True,
    help="Sheet image; .jpg (quality 85) keeps it small, .png is lossless.",
)
def sheet_command(data: Path, count: int, seed: int, model_dir: Path | None, output: Path) -> None:
    """Draw the iFADIT sample sheet: photos of a set, original | anonymized | restored | wrong key.

    Every face of each photo is anonymized and pasted back as `ifadit anonymize` does, then restored at the
    same landmarks with the right key and with an unrelated key. Photos keep their resolution (taller than
    320 px: shrunk for the sheet only). See docs/results.md for how the faces look.

    \b
    Example:
      ifadit eval sheet --data ../shared/data/reid/dlib-johns --count 16 -o docs/images/sheet-16.jpg
    """
    from ifadit.backends.base import get_backend
    from ifadit.eval.run import random_keys
    from ifadit.eval.sheet import write_sheet

    with usage_errors():
        backend = get_backend("ifadit", model_dir=model_dir)
        right, wrong = random_keys(2, seed)
        written, rows = write_sheet(data, backend, (right, wrong), count, output)
    faces = sum(row.faces for row in rows)
    click.echo(f"sheet: {written} ({len(rows)} photos, {faces} faces)")


def register(group: click.Group) -> None:
    """Add the `eval` group to the root command."""
    group.add_command(eval_group)
