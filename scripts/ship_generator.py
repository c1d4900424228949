"""Copy a training run's G_ema checkpoint into `pretrained/` with its model card, sample grid and index entry.

    python scripts/ship_generator.py runs/gen64 --name stylegan2-celeba-64 --frechet runs/gen64-frechet.jsonl

The card records the architecture, the data and its terms, steps, images seen, wall time, hardware, and
the Fréchet-distance trend measured by `scripts/generator_frechet.py` (passed in as its JSON-lines output).
The sample grid shows 64 faces from fixed seeds with the noise mode the iFADIT backend renders with.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ifadit.models.pretrained_index import record_shipped
from ifadit.models.stylegan2.checkpoint import load_generator, save_generator
from ifadit.models.stylegan2.networks import Generator

PRETRAINED = Path("pretrained")
DATA = (
    "CelebA-derived colour face crops (`celeba-crops/train`, 5,023 images, via the public 'Face Mask ~12K' set, "
    "no-mask part), aligned by ifadit's face stage to the canonical 64 px crop (dlib HOG upsample 1 + 5 "
    "landmarks, face-chip geometry with padding 0.25): 4,718 crops. Terms: CelebA, non-commercial research only."
)

SHARED_CPU = "2 cores shared with other work, 1 thread"  # how most runs used the CPU (card wall-time line)


def sample_grid(generator: torch.nn.Module, path: Path, noise_mode: str, seed: int = 20261125) -> None:
    z = torch.randn(64, generator.z_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        img = generator(z, noise_mode=noise_mode)
    tiles = ((img.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    size = tiles.shape[1]
    grid = tiles.reshape(8, 8, size, size, 3).transpose(0, 2, 1, 3, 4).reshape(8 * size, 8 * size, 3)
    Image.fromarray(np.ascontiguousarray(grid)).save(path)


def trend_table(trend: list[dict]) -> str:
    """Markdown rows: checkpoint, step, kimg, Fréchet distance, identity diversity (when measured)."""
    rows = [
        f"| {r.get('stage', '')} | {r['checkpoint']} | {r['step']} | {r['kimg']} | {r['frechet_faceres']} | "
        f"{r.get('identity_diversity', '-')} |"
        for r in trend
    ]
    header = "| stage | checkpoint | step | kimg | Fréchet (faceres) | identity diversity (faceres) |"
    return "\n".join([header, "|---|---|---|---|---|---|", *rows])


def run_command(options: dict) -> str:
    """The `ifadit train generator` command line of a run's options.json."""
    parts = [
        f"ifadit train generator --data {options['data']} --out {options['out']} --batch {options['batch']}",
        f"--lr {options['lr']} --noise-mode {options['noise_mode']} --seed {options['seed']}",
    ]
    if options.get("init_generator"):
        parts.append(  # the width is the checkpoint's, or wider: a widening warm start
            f"--init-generator {options['init_generator']} --d-warmup-steps {options['d_warmup_steps']} "
            f"--channel-base {options['channel_base']} --channel-max {options['channel_max']}"
        )
    else:
        parts.append(
            f"--resolution {options['resolution']} --channel-base {options['channel_base']} --channel-max "
            f"{options['channel_max']} --z-dim {options['z_dim']} --mapping-layers {options['mapping_layers']}"
        )
    for key in ("d_channel_base", "d_channel_max", "ema_kimg"):
        if options.get(key) is not None:
            parts.append(f"--{key.replace('_', '-')} {options[key]}")
    if options.get("identity_weight", 0.0) > 0:
        parts.append(
            f"--identity-weight {options['identity_weight']} --identity-margin {options['identity_margin']}"
        )
    if options.get("feature_d_weight", 0.0) > 0:
        parts.append(f"--feature-d-weight {options['feature_d_weight']}")
    return " ".join(parts)


def earlier_stages(previous: dict | None) -> list[dict]:
    """The training stages behind the generator a run started from, oldest first (none for a run from scratch).

    Cards written since stage 3 list them under "stages" (the newest without its model id, which is the
    card's own); the stage-2 card (`3f666e323d55`) names only its own run and, under "previous", stage 1.
    """
    if previous is None:
        return []
    if "stages" in previous:  # the last one is the previous model itself, saved before its id was known
        return [{"model_id": previous["model_id"], **st} for st in previous["stages"]]
    first = previous["previous"]
    return [
        {
            "stage": 1,
            "model_id": first["model_id"],
            "step": first["step"],
            "kimg": first["kimg"],
            "how": "from scratch with random noise inputs (on the alignment of its time: 4,711 crops of 5,000)",
        },
        {
            "stage": 2,
            "model_id": previous["model_id"],
            "step": previous["step"],
            "kimg": previous["kimg"],
            "wall_hours": round(previous["wall_seconds"] / 3600, 2),
            "how": f"warm start from stage 1; `{run_command(previous['options'])}`",
        },
    ]


def card_markdown(
    name: str,
    config: dict,
    state: dict,
    options: dict,
    trend: list[dict],
    floor: float | None,
    params: int,
    stages: list[dict],
    start: str,
    note: str = "",
    compute: str = SHARED_CPU,
) -> str:
    note_block = f"\n{note}\n" if note else ""
    floor_line = f"Real-vs-real floor (validation vs test, same features): **{floor}**.\n" if floor else ""
    extra_terms = (
        f", identity spread (torch dlib, weight {options['identity_weight']}, margin {options['identity_margin']})"
        if options.get("identity_weight", 0.0) > 0
        else ""
    )
    if options.get("feature_d_weight", 0.0) > 0:
        extra_terms += (
            f", a second discriminator on the torch dlib recognizer's feature maps of "
            f"{', '.join(options['feature_d_layers'])} (1x1-conv heads, weight {options['feature_d_weight']})"
        )
    earlier = "".join(
        f"- Stage {st['stage']}: `{st['model_id']}`, shipped earlier under this name (its card is in git "
        f"history): {st['step']} steps, {st['kimg']} kimg"
        + (f", {st['wall_hours']} h" if "wall_hours" in st else "")
        + f", {st['how']}.\n"
        for st in stages[:-1]
    )
    if len(stages) > 1:
        earlier += (
            f"- Stage {len(stages)} (these weights): {start}, of G and G_ema, with a "
            f"fresh D ({options['d_warmup_steps']} D-only steps first).\n"
        )
    return f"""# {name}

StyleGAN2 generator (our implementation in NVIDIA stylegan2-ada-pytorch's layout) for ifadit's canonical
64 px face crop. It is the decoder of the iFADIT model: the mapper writes W+ codes, this network renders them.

## Architecture
`{json.dumps(config)}` — {params:,} parameters.

## Training
- Data: {DATA}
{earlier}- This run: {state.get("step")} steps, {state.get("kimg")} kimg, wall time
  {state.get("wall_seconds", 0) / 3600:.2f} h on {platform.machine()} CPU ({compute}),
  no GPU; noise inputs `{options["noise_mode"]}` in training.
- Loss: non-saturating logistic, lazy R1 (gamma {options["r1_gamma"]} every {options["r1_interval"]} steps),
  EMA of G, style mixing {options["style_mixing"]}, x-flips and ADA (target {options["ada_target"]}){extra_terms}.
  Command: `{run_command(options)}`.

## Measured quality
Fréchet distance between 1,000 generated faces (fixed seeds, `noise_mode='none'`) and the 484 aligned
`celeba-crops/test` faces (never used for training), on the 1024-D features of the independent `faceres`
recognizer (never used in training); lower is better. Identity diversity: the fraction of pairs of the first
200 of those faces that faceres does not verify as one person (real test faces: 0.990; higher is better: the
iFADIT surrogates can differ only as much as this generator's faces do). {floor_line}
{trend_table(trend)}
{note_block}
Measured with `python scripts/generator_frechet.py RUN --real ../shared/data/celeba-crops/test --samples 1000`
over each run's checkpoints (each stage's first row after the previous stage's last is that base re-measured
with the same command on its shipped folder).

## Limits
A short CPU run: faces are low in detail, and the identity-spread term (when on) also sharpens eye and mouth
regions into visible artifacts that the discriminator has not yet removed. The samples and the Fréchet
distances use `noise_mode='none'`, as does the iFADIT model (`RENDER_NOISE_MODE` in
ifadit/models/ifadit/model.py). Each shipped version must measure better than the one before.

## Files
`model.safetensors` (fp32), `config.json` (architecture, sha256, model id), `samples.png` (64 fixed seeds).
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path)
    parser.add_argument("--name", default="stylegan2-celeba-64")
    parser.add_argument("--frechet", type=Path, required=True, help="JSON lines from generator_frechet.py")
    parser.add_argument("--checkpoint", help="checkpoint folder name (default: the newest)")
    parser.add_argument("--pretrained", type=Path, default=PRETRAINED, help="where shipped models live")
    parser.add_argument(
        "--note", default="", help="a paragraph for the card after the trend (how it was chosen)"
    )
    parser.add_argument(
        "--compute",
        default=SHARED_CPU,
        help="how the run used the CPU, for the card's wall-time line",
    )
    return parser.parse_args()


def read_run(
    run: Path, checkpoint: str | None
) -> tuple[Generator, dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """The run's G_ema at `checkpoint` (default: the newest), that checkpoint's state, the run's options, and
    the model card of the generator it was warm-started from (None for a run from scratch)."""
    checkpoints = run / "checkpoints"
    chosen = checkpoint or json.loads((checkpoints / "latest.json").read_text())["path"]
    generator, _ = load_generator(checkpoints / chosen / "G_ema")
    state = json.loads((checkpoints / chosen / "state.json").read_text())
    options = json.loads((run / "options.json").read_text())
    previous = None
    if options.get("init_generator"):  # read before the folder is overwritten (it may be the same one)
        previous = json.loads((Path(options["init_generator"]) / "model_card.json").read_text())
    return generator, state, options, previous


def frechet_trend(
    frechet: Path, previous: dict[str, Any] | None, stage: int
) -> tuple[list[dict[str, Any]], float | None]:
    """The Fréchet rows of every stage so far (the base's from its card, this stage's from `frechet`), and the
    real-vs-real floor (measured now, else the base's)."""
    lines = [json.loads(line) for line in frechet.read_text().splitlines() if line.strip()]
    measured = [r for r in lines if "frechet_faceres" in r]
    trend = [{"stage": "1", **r} for r in (previous or {}).get("frechet_faceres", [])]
    base_sha = None if previous is None else previous["sha256"][:12]  # a re-measured base row names the base
    trend += [
        {"stage": str(stage - 1 if base_sha and r["model_id"].endswith(base_sha) else stage), **r}
        for r in measured
    ]
    floor = next((r["real_vs_real"] for r in lines if "real_vs_real" in r), None)
    if floor is None and previous is not None:
        floor = previous.get("real_vs_real")
    return trend, floor


def start_line(previous: dict[str, Any] | None, options: dict[str, Any], stage: int) -> str:
    """How this stage started: from scratch, or warm from the previous stage (widened, when it was)."""
    start = f"warm start from stage {stage - 1}" if previous is not None else "from scratch"
    if previous is not None:
        before = (previous["options"]["channel_base"], previous["options"]["channel_max"])
        if before != (options["channel_base"], options["channel_max"]):
            start += (
                f", widened from channel base / max {before[0]} / {before[1]} to {options['channel_base']} / "
                f"{options['channel_max']} (same images at step 0: `ifadit.models.stylegan2.widen`)"
            )
    return start


def main() -> None:
    args = parse_args()
    # 1. The run, its stage and the trend so far.
    generator, state, options, previous = read_run(args.run, args.checkpoint)
    stages = earlier_stages(previous)
    stage = len(stages) + 1
    trend, floor = frechet_trend(args.frechet, previous, stage)
    start = start_line(previous, options, stage)
    # 2. The card's facts, with this stage appended.
    card = {
        "data": DATA,
        "step": state.get("step"),
        "kimg": state.get("kimg"),
        "wall_seconds": state.get("wall_seconds"),
        "options": options,
        "frechet_faceres": trend,
        "real_vs_real": floor,
        "noise_mode": "none",
    }
    this_stage = {
        "stage": stage,
        "step": state.get("step"),
        "kimg": state.get("kimg"),
        "wall_hours": round(state.get("wall_seconds", 0) / 3600, 2),
        "how": f"{start}; `{run_command(options)}`",
    }
    all_stages = [*stages, this_stage]
    card["stages"] = all_stages
    # 3. Weights, samples, MODEL_CARD.md and the index entry.
    folder = args.pretrained / args.name
    params = sum(p.numel() for p in generator.parameters())
    model_id = save_generator(generator, folder, args.name, card=card)
    sample_grid(generator, folder / "samples.png", noise_mode="none")
    config = json.loads((folder / "config.json").read_text())["config"]
    markdown = card_markdown(
        args.name,
        config,
        state,
        options,
        trend,
        floor,
        params,
        all_stages,
        start,
        args.note,
        args.compute,
    )
    (folder / "MODEL_CARD.md").write_text(markdown)
    record_shipped(args.pretrained, args.name, model_id)
    print(f"shipped {model_id} to {folder}")


if __name__ == "__main__":
    main()
