"""Benchmark: end-to-end `anonymize` and `restore` throughput per backend on 1 MP images with one face.

Images: 1024x1024 (1.05 MP) frames, each holding the head and shoulders of skimage's astronaut (one face, native
scale) at another place on a gradient, written as PNG. Each backend runs the whole pipeline through the library exactly as the CLI
does (SQLite vault in a temporary folder, one audited run per anonymize, one audited action per
restore; HOG detector for every backend): `anonymize --seal-original` over the folder, then
`restore --exact` of each output, plus `restore` through the model for reversible backends. Every figure
is the best of `--repeat` rounds and is printed beside the blur backend's figure measured in the same run
(the baseline) with the time ratio (backend time / blur time per image). A reversible backend added to the
registry (e.g. "ifadit") becomes one more row without changes here.

Usage: .venv/bin/python benchmarks/pipeline_bench.py [--images 6] [--repeat 2] [--backends blur,pixelate,mask]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from skimage import data

from ifadit.backends.base import BACKENDS, get_backend
from ifadit.errors import IfaditError
from ifadit.media.image import write_image
from ifadit.pipeline.anonymize import AnonymizeOptions
from ifadit.pipeline.batch import anonymize_paths
from ifadit.pipeline.restore import restore_path
from ifadit.pipeline.restore_plan import RestoreOptions
from keyvault import KdfParams, Vault, access, keys, open_vault

SIDE = 1024
CASE = "BENCH"


def images(count: int) -> list[np.ndarray]:
    """`count` 1024x1024 frames, each with the astronaut's head and shoulders somewhere on a gradient: one face each."""
    photo = data.astronaut()[:300]  # head and shoulders: above the mission patch HOG sometimes boxes
    ramp = np.linspace(60, 190, SIDE, dtype=np.float32)
    out = []
    for i in range(count):
        canvas = np.empty((SIDE, SIDE, 3), dtype=np.uint8)
        canvas[...] = (ramp[None, :, None] * 0.6 + ramp[:, None, None] * 0.4).astype(np.uint8)
        x, y = 64 + (53 * i) % 400, 64 + (37 * i) % 400
        canvas[y : y + 300, x : x + 512] = photo
        out.append(canvas)
    return out


@dataclass
class Row:
    """Seconds per image (best round) for one backend."""

    backend: str
    faces: int
    anonymize: float
    restore_exact: float
    restore_model: float | None


def best(run: Callable[[], None], repeat: int) -> float:
    fastest = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        fastest = min(fastest, time.perf_counter() - start)
    return fastest


def measure(vault: Vault, key: str, backend: str, inputs: Path, work: Path, repeat: int) -> Row:
    count = len(list(inputs.iterdir()))
    out = work / f"out-{backend}"
    options = AnonymizeOptions(backend=backend, seal_original=True)
    faces = 0

    def anonymize() -> None:
        nonlocal faces
        shutil.rmtree(out, ignore_errors=True)
        report = anonymize_paths(vault, [inputs], out, options, key=key)
        faces = sum(item.faces for item in report.items)
        assert report.exit_code == 0, report.failed

    def restore(exact: bool) -> Callable[[], None]:
        def run() -> None:
            for path in sorted(out.iterdir()):
                if path.suffix == ".png":
                    target = work / f"restored-{backend}" / path.name
                    restore_path(
                        vault,
                        path,
                        target,
                        RestoreOptions(case=CASE, reason="bench", exact=exact, force=True),
                    )

        return run

    anonymize_s = best(anonymize, repeat) / count
    exact_s = best(restore(True), repeat) / count
    model_s = best(restore(False), repeat) / count if get_backend(backend).reversible else None
    return Row(backend, faces, anonymize_s, exact_s, model_s)


def _cell(seconds: float | None, faces_per_image: float, base: float | None) -> str:
    if seconds is None:
        return f"{'-':>28}"
    ratio = f"{seconds / base:5.2f}x" if base else "   - "
    return f"{1 / seconds:6.2f} img/s {faces_per_image / seconds:6.2f} faces/s {ratio}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--backends",
        default=",".join(name for name in ("blur", "pixelate", "mask", "ifadit") if name in BACKENDS),
    )
    args = parser.parse_args()
    names = ["blur"]
    for name in args.backends.split(","):
        if name and name != "blur":
            try:
                get_backend(name)
            except IfaditError as exc:  # e.g. the ifadit model is not shipped yet
                print(f"skipping {name}: {exc}")
                continue
            names.append(name)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        inputs = work / "inputs"
        inputs.mkdir()
        for index, image in enumerate(images(args.images)):
            write_image(inputs / f"img{index:02d}.png", image)
        cheap = KdfParams.generate(memory_cost=8192, iterations=1, lanes=1)  # unlock cost is not measured
        with Vault.init(f"sqlite:///{work / 'vault.sqlite3'}", "admin", b"bench", kdf=cheap) as vault:
            access.add_user(vault, "admin2", ["operator", "investigator"], b"x", kdf=cheap)
            access.set_policy(vault, require_approval=False)
            key = keys.issue(vault, CASE, "benchmark").handle
        with open_vault(f"sqlite:///{work / 'vault.sqlite3'}", "admin2", b"x") as vault:
            rows = [measure(vault, key, name, inputs, work, args.repeat) for name in names]
    base = rows[0]
    print(
        f"{args.images} images {SIDE}x{SIDE} (1.05 MP), one face each; HOG detector; best of {args.repeat}; "
        "ratio = time per image / blur's (baseline, same run)"
    )
    print(
        f"{'backend':<10}{'anonymize --seal-original':>34}{'restore --exact':>34}{'restore (model)':>34}"
        f"{'restore/anonymize':>20}"
    )
    for row in rows:
        per_image = row.faces / args.images
        restore_s = row.restore_model if row.restore_model is not None else row.restore_exact
        print(
            f"{row.backend:<10}  {_cell(row.anonymize, per_image, base.anonymize)}"
            f"  {_cell(row.restore_exact, per_image, base.restore_exact)}"
            f"  {_cell(row.restore_model, per_image, None)}"
            f"{restore_s / row.anonymize:18.2f}x"
        )


if __name__ == "__main__":
    main()
