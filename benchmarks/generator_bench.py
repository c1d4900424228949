"""Benchmark: StyleGAN2 generation and training images/s on CPU, each beside an in-run baseline.

Generation (G_ema in eval mode, fused modulated convs, noise_mode='const'), at 64 and 128 px, batch 1 and 16:
  baseline  a plain convolution generator of the same topology and FLOPs (learned 4x4 constant, per block a
            3x3 up-conv, a 3x3 conv, a 1x1 to-RGB and the FIR-upsampled skip image) without the mapping
            network, styles or (de)modulation: what the style machinery costs on top of the convolutions.
  stylegan2 the shipped width (channel base / max, z / w and mapping depth from
            pretrained/stylegan2-celeba-64/config.json).
Training at 64 px, batch 16 (one full `train_step`: G step, D step, EMA; R1 every 16 steps, so its cost is
averaged over `--train-steps` steps starting with an R1 step):
  baseline  ADA probability 0 (the augment pipe is skipped: x-flips of the reals only),
  ada p=0.2 the same step with the augment pipe active, as ADA runs once D overfits.

Usage: .venv/bin/python benchmarks/generator_bench.py [--repeat 3] [--train-steps 8] [--threads N]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from timing import best_of

from ifadit.models.stylegan2 import ops
from ifadit.models.stylegan2.checkpoint import read_config
from ifadit.models.stylegan2.networks import Conv2dLayer, Generator, channels_at
from ifadit.training.loop import TrainOptions, build_state, generator_config, train_step

SHIPPED = Path(__file__).resolve().parents[1] / "pretrained" / "stylegan2-celeba-64"


def shipped_options(**changes: object) -> TrainOptions:
    """Training options with the shipped generator's architecture (its width, latent sizes, mapping depth)."""
    arch = read_config(SHIPPED)["config"]
    return TrainOptions(
        data="",
        out="",
        z_dim=arch["z_dim"],
        w_dim=arch["w_dim"],
        mapping_layers=arch["mapping_layers"],
        channel_base=arch["channel_base"],
        channel_max=arch["channel_max"],
        **changes,  # type: ignore[arg-type]
    )


class PlainGenerator(torch.nn.Module):
    """The synthesis topology with ordinary convolutions (no styles, no modulation, no noise)."""

    def __init__(self, resolution: int, channel_base: int, channel_max: int) -> None:
        super().__init__()
        self.resolutions = [2**i for i in range(2, resolution.bit_length())]
        ch = {r: channels_at(r, channel_base, channel_max) for r in self.resolutions}
        self.const = torch.nn.Parameter(torch.randn(ch[4], 4, 4))
        self.register_buffer("resample_filter", ops.setup_filter([1, 3, 3, 1]))
        self.layers = torch.nn.ModuleList()
        for r in self.resolutions:
            convs = [] if r == 4 else [Conv2dLayer(ch[r // 2], ch[r], 3, activation="lrelu", up=2)]
            convs += [Conv2dLayer(ch[r], ch[r], 3, activation="lrelu"), Conv2dLayer(ch[r], 3, 1)]
            self.layers.append(torch.nn.ModuleList(convs))

    def forward(self, n: int) -> torch.Tensor:
        x = self.const.unsqueeze(0).repeat(n, 1, 1, 1)
        img = None
        for convs in self.layers:
            for conv in convs[:-1]:
                x = conv(x)
            y = convs[-1](x)
            img = y if img is None else ops.upsample2d(img, self.resample_filter) + y
        assert img is not None
        return img


def bench_generation(repeat: int) -> None:
    print("generation, images/s (best of repeats; G_ema eval, fused modconv, const noise)")
    print(f"  {'res':>4} {'batch':>5} {'plain conv':>11} {'stylegan2':>10} {'ratio':>6}")
    shipped = shipped_options()
    for res in (64, 128):
        cfg = generator_config(shipped_options(resolution=res))
        torch.manual_seed(0)
        G = Generator(cfg).eval().requires_grad_(False)
        plain = PlainGenerator(res, shipped.channel_base, shipped.channel_max).eval().requires_grad_(False)
        for batch in (1, 16):
            z = torch.randn(batch, cfg.z_dim)
            with torch.no_grad():
                t_plain = best_of(repeat, lambda p=plain, b=batch: p(b), warm_up=True)
                t_g = best_of(repeat, lambda g=G, zz=z: g(zz, noise_mode="const"), warm_up=True)
            ips_plain, ips_g = batch / t_plain, batch / t_g
            print(f"  {res:>4} {batch:>5} {ips_plain:>11.1f} {ips_g:>10.1f} {ips_g / ips_plain:>6.2f}")


def bench_training(steps: int) -> None:
    options = shipped_options(ada_target=0.6)
    print(
        f"training at 64 px, batch {options.batch}, images/s over {steps} steps (R1 every 16, first step has R1)"
    )
    reals = torch.randint(0, 256, (options.batch, 3, 64, 64), dtype=torch.uint8)
    results = {}
    for label, p in (("baseline (x-flips only, ADA p=0)", 0.0), ("ADA p=0.2", 0.2)):
        state = build_state(options)
        assert state.ada is not None
        state.ada.p = p
        state.augment.p.fill_(p)
        state.ada.interval = 10**9  # hold p fixed during the measurement
        train_step(state, reals, options)  # warm-up
        state.step = 0
        start = time.perf_counter()
        for _ in range(steps):
            train_step(state, reals, options)
        elapsed = time.perf_counter() - start
        results[label] = options.batch * steps / elapsed
        print(f"  {label:<34} {results[label]:6.2f} img/s   {elapsed / steps:6.2f} s/step")
    base, ada = results.values()
    print(f"  ratio ADA / baseline: {ada / base:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--train-steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, flush-denormal on")
    bench_generation(args.repeat)
    bench_training(args.train_steps)


if __name__ == "__main__":
    main()
