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

import numpy as np
import torch
from PIL import Image

from ifadit.models.checkpoint import load_generator, save_generator
from ifadit.models.pretrained_index import record_shipped

PRETRAINED = Path("pretrained")
DATA = (
    "CelebA-derived colour face crops (`celeba-crops/train`, 5,000 images, via the public 'Face Mask ~12K' "
    "set, no-mask part), aligned by ifadit's face stage to the canonical 64 px crop (dlib HOG + 5 landmarks, "
    "face-chip geometry with padding 0.25); 4,711 crops kept. Terms: CelebA, non-commercial research only."
)


def sample_grid(generator: torch.nn.Module, path: Path, noise_mode: str, seed: int = 20261125) -> None:
    z = torch.randn(64, generator.z_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        img = generator(z, noise_mode=noise_mode)
    tiles = ((img.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    size = tiles.shape[1]
    grid = tiles.reshape(8, 8, size, size, 3).transpose(0, 2, 1, 3, 4).reshape(8 * size, 8 * size, 3)
    Image.fromarray(np.ascontiguousarray(grid)).save(path)


def card_markdown(
    name: str, config: dict, state: dict, trend: list[dict], floor: float | None, params: int
) -> str:
    rows = "\n".join(
        f"| {r['checkpoint']} | {r['step']} | {r['kimg']} | {r['frechet_faceres']} |" for r in trend
    )
    floor_line = f"Real-vs-real floor (validation vs test, same features): **{floor}**.\n" if floor else ""
    return f"""# {name}

StyleGAN2 generator (our implementation in NVIDIA stylegan2-ada-pytorch's layout) for ifadit's canonical
64 px face crop. It is the decoder of the iFADIT model: the mapper writes W+ codes, this network renders them.

## Architecture
`{json.dumps(config)}` — {params:,} parameters.

## Training
- Data: {DATA}
- Steps: {state.get("step")}, images seen: {state.get("nimg")} ({state.get("kimg")} kimg), wall time
  {state.get("wall_seconds", 0) / 3600:.2f} h on {platform.machine()} CPU (2 cores shared with other work,
  1 thread, niced), no GPU.
- Loss: non-saturating logistic, lazy R1 (gamma 0.1 every 16 steps), EMA of G, style mixing 0.9, x-flips and
  ADA (target 0.6). Command: `ifadit train generator --data cache/celeba-train-64.npz --resolution 64
  --out runs/gen64 --batch 16 --channel-base 2048 --channel-max 128 --z-dim 256 --mapping-layers 2
  --r1-gamma 0.1 --ada-target 0.6 --seed 0`.

## Measured quality
Fréchet distance between 1,000 generated faces (fixed seeds, `noise_mode='none'`) and the 484 aligned
`celeba-crops/test` faces (never used for training), on the 1024-D features of the independent `faceres`
recognizer (never used in training). Lower is better. {floor_line}
| checkpoint | step | kimg | Fréchet (faceres) |
|---|---|---|---|
{rows}

Measured with `python scripts/generator_frechet.py runs/gen64 --real ../shared/data/celeba-crops/test
--real-baseline ../shared/data/celeba-crops/validation --samples 1000 --every 3` (then `--after 1500
--every 2` for the later checkpoints).

## Limits
A short CPU run: faces are blurry and low in detail. The noise inputs still add a fixed per-pixel texture
(`noise_mode='const'` and `'random'`; `'none'` gives clean faces), so the samples and the Fréchet distances
here use `noise_mode='none'`, as does the iFADIT model (`RENDER_NOISE_MODE` in ifadit/models/ifadit_model.py).
Training continues in later sessions (GPU when available); each shipped version must measure better.

## Files
`model.safetensors` (fp32), `config.json` (architecture, sha256, model id), `samples.png` (64 fixed seeds).
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path)
    parser.add_argument("--name", default="stylegan2-celeba-64")
    parser.add_argument("--frechet", type=Path, required=True, help="JSON lines from generator_frechet.py")
    parser.add_argument("--checkpoint", help="checkpoint folder name (default: the newest)")
    args = parser.parse_args()

    checkpoints = args.run / "checkpoints"
    chosen = args.checkpoint or json.loads((checkpoints / "latest.json").read_text())["path"]
    generator, _ = load_generator(checkpoints / chosen / "G_ema")
    state = json.loads((checkpoints / chosen / "state.json").read_text())
    lines = [json.loads(line) for line in args.frechet.read_text().splitlines() if line.strip()]
    floor = next((r["real_vs_real"] for r in lines if "real_vs_real" in r), None)
    trend = [r for r in lines if "frechet_faceres" in r]

    folder = PRETRAINED / args.name
    params = sum(p.numel() for p in generator.parameters())
    card = {
        "data": DATA,
        "step": state.get("step"),
        "kimg": state.get("kimg"),
        "frechet_faceres": trend,
        "real_vs_real": floor,
        "noise_mode": "none",
    }
    model_id = save_generator(generator, folder, args.name, card=card)
    sample_grid(generator, folder / "samples.png", noise_mode="none")
    config = json.loads((folder / "config.json").read_text())["config"]
    (folder / "MODEL_CARD.md").write_text(card_markdown(args.name, config, state, trend, floor, params))

    record_shipped(PRETRAINED, args.name, model_id)
    print(f"shipped {model_id} to {folder}")


if __name__ == "__main__":
    main()
