"""Seconds per iFADIT training step (phase 1, phase 2) at 64 px, beside the frozen decoder's own cost.

Real torch dlib recognizer, a randomly initialised generator of the `runs/gen64` width (channel_base 2048,
channel_max 128, z/w 256, 2 mapping layers), production-size encoder, mapper and flow. Baseline in the same run:
one forward + backward of the generator's synthesis on the same batch (the part no design can avoid).

    python benchmarks/ifadit_train_bench.py --batch 8 --repeat 3 --threads 1
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from timing import run_times

from ifadit.models.stylegan2.checkpoint import save_generator
from ifadit.models.stylegan2.networks import Generator, GeneratorConfig
from ifadit.training.data import load_crops
from ifadit.training.options import DLIB_FEATURE_LAYERS
from ifadit.training.phase1 import (
    Phase1Options,
    build_model,
    identity_statistics,
    phase1_step,
)
from ifadit.training.phase2 import Phase2Options, phase2_parameters, phase2_step
from ifadit.training.runner import PhaseState
from ifadit.training.taps import FeatureTap

GEN64 = GeneratorConfig(
    img_resolution=64, z_dim=256, w_dim=256, mapping_layers=2, channel_base=2048, channel_max=128
)


def seconds(fn: Callable[[], object], repeat: int) -> float:
    """Median wall seconds of `fn` over `repeat` calls after one warm-up call."""
    return float(np.median(run_times(repeat, fn, warm_up=True)))


def params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="cache/celeba-train-64.npz")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    torch.set_num_threads(args.threads)
    crops = load_crops(Path(args.data), 64)
    batch = crops[: args.batch]
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        save_generator(Generator(GEN64), Path(tmp) / "gen", name="bench-gen")
        options = Phase1Options(generator=str(Path(tmp) / "gen"), data=args.data, out=tmp, mirror=False)
        model = build_model(options)
    identity_statistics(model, crops, 256, 0)
    G = model.generator
    print(
        f"parameters: G {sum(p.numel() for p in G.parameters()):,} (frozen), "
        f"recognizer {sum(p.numel() for p in model.recognizer.parameters()):,} (frozen), "
        f"E_attr {params(model.encoder):,}, mapper {params(model.mapper):,}, "
        f"flow {len(torch.nn.utils.parameters_to_vector(model.flow.trainable_parameters())):,}, "
        f"correction {params(model.correction):,}"
    )

    ws = G.mapping.w_avg.expand(args.batch, G.num_ws, -1).clone().requires_grad_(True)

    def decoder() -> None:
        G.synthesis(ws, noise_mode="const").square().mean().backward()

    base = seconds(decoder, args.repeat)
    p1 = PhaseState(
        model, torch.optim.Adam([*model.encoder.parameters(), *model.mapper.parameters()], lr=1e-4)
    )
    tap = FeatureTap(model.recognizer, DLIB_FEATURE_LAYERS)
    t1 = seconds(lambda: phase1_step(p1, tap, batch, options), args.repeat)
    p2 = PhaseState(model, torch.optim.Adam(phase2_parameters(model), lr=1e-4))
    options2 = Phase2Options(encoder="", data=args.data, out="")
    t2 = seconds(lambda: phase2_step(p2, batch, options2), args.repeat)
    print(f"batch {args.batch}, {args.threads} thread(s), median of {args.repeat}")
    print(f"  baseline: G synthesis fwd+bwd  {base:6.2f} s")
    print(f"  phase-1 step                   {t1:6.2f} s  {t1 / base:5.1f}x")
    print(f"  phase-2 step                   {t2:6.2f} s  {t2 / base:5.1f}x")


if __name__ == "__main__":
    main()
