"""Train the generator on the lent GPU machine within a time limit, from a crop pack small enough to carry.

A call carries 64 MiB in all and the device image lacks PyAV, cryptography, SQLAlchemy and Alembic
(docs/model.md, "Training on a GPU machine"). So the run is prepared here and this script, which imports
only the training loop, runs it there:

    # here: the run's options (a 0-step run writes options.json), a JPEG pack of the crops, the dlib wheel
    ifadit train generator --data cache/celeba-train-64.npz --out runs/gpu1 --steps 0 [options ...]
    python scripts/device_generator.py pack cache/celeba-train-64.npz cache/celeba-train-64-q95.npz
    # there (carry runs/gpu1/options.json, cache/celeba-train-64-q95.npz and .whl, the dlib-bin wheel for
    # CPython 3.12; install it as the device README says, then PYTHONPATH=/tmp/site:. for ifadit itself):
    python3 scripts/device_generator.py run runs/gpu1 --pack cache/celeba-train-64-q95.npz --minutes 8 \\
        --device cuda --export $OUT/G_ema

`run` unpacks the pack to the run's data path when that file is missing, starts the run afresh (or resumes
it when it holds a checkpoint), stops after --minutes with a checkpoint, as Ctrl-C would, and copies the
newest checkpoint's G_ema (safetensors + config, 6.9 MB at the shipped width) to --export.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import signal
import sys
from pathlib import Path
from types import FrameType

from ifadit.errors import IfaditError, InputError
from ifadit.training.crop_pack import pack_crops, unpack_crops
from ifadit.training.loop import train_generator
from ifadit.training.options import RunControl, latest_checkpoint, read_options


def stop_after(minutes: float) -> None:
    """Raise KeyboardInterrupt after `minutes`, so the loop writes its checkpoint and returns."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGALRM, interrupt)
    signal.alarm(max(1, round(minutes * 60)))


def export_g_ema(folder: Path, export: Path) -> None:
    """Copy the G_ema folder of the run's newest checkpoint to `export`."""
    newest = latest_checkpoint(folder)
    if newest is None:
        raise InputError(f"{folder}: no checkpoint to export")
    shutil.copytree(newest / "G_ema", export, dirs_exist_ok=True)
    print(f"{export}: G_ema of {newest.name}", flush=True)


def run(folder: Path, pack: Path | None, minutes: float, device: str, export: Path | None) -> None:
    options = dataclasses.replace(read_options(folder), steps=None, out=str(folder))
    data = Path(options.data)
    if not data.exists():
        if pack is None:
            raise InputError(f"{data}: missing, and no --pack to unpack it from")
        print(f"unpacked {unpack_crops(pack, data)} crops from {pack} to {data}", flush=True)
    resume = latest_checkpoint(folder) is not None

    def report(step: int, stats: dict[str, float]) -> None:
        if step % 100 == 0:
            print(
                f"step {step}: D {stats['loss_D']:.3f} G {stats.get('loss_G', float('nan')):.3f}", flush=True
            )

    stop_after(minutes)
    try:
        state = train_generator(options, RunControl(resume=resume, on_step=report, device=device))
        print(f"{folder}: step {state.step}, {state.nimg / 1000:.1f} kimg", flush=True)
    except KeyboardInterrupt:
        print(f"{folder}: stopped after {minutes} min with a checkpoint", flush=True)
    if export is not None:
        export_g_ema(folder, export)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    pack = commands.add_parser("pack", help="write a JPEG pack of an .npz crop cache")
    pack.add_argument("cache", type=Path)
    pack.add_argument("out", type=Path)
    pack.add_argument("--quality", type=int, default=95)
    go = commands.add_parser("run", help="train the run in RUN for --minutes (resumes when it can)")
    go.add_argument("run", type=Path, help="run folder holding options.json")
    go.add_argument("--pack", type=Path, help="JPEG pack to unpack when the run's data file is missing")
    go.add_argument("--minutes", type=float, required=True)
    go.add_argument("--device", default="cuda", choices=["cpu", "cuda"])
    go.add_argument("--export", type=Path, help="copy the newest checkpoint's G_ema folder here")
    args = parser.parse_args()
    try:
        if args.command == "pack":
            count = pack_crops(args.cache, args.out, args.quality)
            print(f"{args.out}: {count} crops, {args.out.stat().st_size / 1e6:.1f} MB", flush=True)
        else:
            run(args.run, args.pack, args.minutes, args.device, args.export)
    except IfaditError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
