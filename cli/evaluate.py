"""`ifadit eval`: measure anonymity, utility and speed (and recovery, wrong keys, attacks) of backends on a set."""

from __future__ import annotations

from pathlib import Path

import click

from cli.options import VaultArgs, json_option, usage_errors, vault_options

BACKEND_CHOICES = ("blur", "pixelate", "mask", "ifadit", "id2face")  # the registry of ifadit.backends.base
RECOGNIZER_CHOICES = ("dlib", "torch-dlib", "faceres")


@click.command("eval")
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
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    show_default="pretrained/ifadit-64",
    help="Model folder of the ifadit backend.",
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
    model_dir: Path | None,
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
      ifadit eval --data ../shared/data/reid/dlib-johns --backend blur --backend mask -o runs/eval-johns
      ifadit eval --data faces/ --backend ifadit --key kh_3f09... --random-keys 16 -o runs/eval-ifadit
    """
    import json

    from ifadit.eval.report import headline_rows, render_table, write_report
    from ifadit.eval.run import EvalOptions, run_eval

    material = None
    if key_handle is not None:
        from keyvault import keys

        with vault_args.open() as vault:
            material = keys.unseal_for_use(vault, key_handle, purpose="anonymize").material
    options = EvalOptions(data=data, limit=limit, seed=seed, attack_steps=attack_steps)
    progress = lambda message: click.echo(message, err=True)  # noqa: E731
    with usage_errors():
        document, results = run_eval(
            options, backends, recognizers, random_keys, material, model_dir=model_dir, progress=progress
        )
    written = write_report(document, results, output)
    if as_json:
        click.echo(json.dumps(document, indent=2, sort_keys=True))
        return
    click.echo(render_table(headline_rows(document)))
    click.echo(f"report: {', '.join(str(p) for p in written)}")


def register(group: click.Group) -> None:
    """Add `eval` to the root command."""
    group.add_command(eval_command)
