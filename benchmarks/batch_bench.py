"""Benchmark: batch anonymize throughput, serial engine (baseline) vs the Ray engine, on the same images.

Images: `--images` (default 200) small real-face photos, about 320 px: windows around the astronaut's face
at shifting offsets (and mirrored), plus the deepface photos of ../shared/data/reid resized to 320 px on their
long side when that folder is present. Both engines run the whole audited job through the library exactly as
`ifadit anonymize --engine serial|ray` does (SQLite vault in a temporary folder, blur backend, HOG detector,
one audit entry per job). Ray is started once before timing (its start-up is printed apart); the Ray figure
is measured with `--workers` actors. Printed: images/s for both, and the ratio Ray / serial.

Expected scaling: each actor is one process doing detection + blending + PNG/JPEG encoding, so throughput
grows with actors only up to the cores available (here 2, shared with the driver and Ray's own daemons),
and by less than that because Ray's per-item scheduling costs are a sizable share of a ~30 ms item.

Usage: .venv/bin/python benchmarks/batch_bench.py [--images 200] [--workers 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from ifadit.media.image import read_image, write_image
from ifadit.pipeline.anonymize import AnonymizeOptions
from ifadit.pipeline.batch import Engine, SerialEngine, anonymize_paths
from ifadit.pipeline.ray_engine import RayEngine
from keyvault import KdfParams, Vault, access, keys, open_vault

SIDE = 320
CASE = "BENCH"
DEEPFACE = Path(__file__).resolve().parents[2] / "shared" / "data" / "reid" / "deepface"


def _resized(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    scale = SIDE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))


def make_images(folder: Path, count: int) -> int:
    """Write `count` ~320 px face photos into `folder`; returns how many came from the deepface set."""
    folder.mkdir(parents=True)
    photos = (
        [_resized(read_image(path)) for path in sorted(DEEPFACE.rglob("*.jpg"))] if DEEPFACE.is_dir() else []
    )
    astronaut = data.astronaut()
    for index in range(count):
        if index % 3 == 2 and photos:
            image = photos[(index // 3) % len(photos)]
        else:
            x, y = 60 + (index * 7) % 60, (index * 5) % 40  # the face (x 175-265, y 76-166) stays inside
            image = astronaut[y : y + SIDE, x : x + SIDE]
            image = image[:, ::-1] if index % 2 else image
        write_image(folder / f"{index:04d}.png", np.ascontiguousarray(image))
    return min(len(photos), count // 3) if photos else 0


def run(url: str, inputs: Path, output: Path, engine: Engine) -> float:
    """Seconds for one audited job over `inputs`."""
    with open_vault(url, "olga", b"olga") as vault:
        start = time.perf_counter()
        report = anonymize_paths(
            vault, [inputs], output, AnonymizeOptions(backend="blur"), case=CASE, engine=engine
        )
        seconds = time.perf_counter() - start
    if report.failed:
        raise SystemExit(f"{len(report.failed)} images failed: {report.failed[0].error}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    import ray

    with tempfile.TemporaryDirectory(prefix="batch-bench-") as tmp:
        root = Path(tmp)
        url = f"sqlite:///{root / 'vault.sqlite3'}"
        kdf = KdfParams.generate(memory_cost=8192, iterations=1, lanes=1)
        with Vault.init(url, "admin", b"admin passphrase", kdf=kdf) as vault:
            access.add_user(vault, "olga", ["operator"], b"olga", kdf=kdf)
            keys.issue(vault, CASE, "batch benchmark")
        deepface = make_images(root / "in", args.images)
        print(f"{args.images} images of ~{SIDE} px ({deepface} deepface photos, the rest astronaut windows)")

        serial = run(url, root / "in", root / "serial", SerialEngine())
        start = time.perf_counter()
        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
        startup = time.perf_counter() - start
        try:
            parallel = run(url, root / "in", root / "ray", RayEngine(workers=args.workers))
        finally:
            ray.shutdown()
        same = all(
            np.array_equal(read_image(root / "serial" / name), read_image(root / "ray" / name))
            for name in sorted(p.name for p in (root / "in").iterdir())
        )

    print(f"{'engine':<22}{'seconds':>9}{'images/s':>10}")
    print(f"{'serial (baseline)':<22}{serial:>9.1f}{args.images / serial:>10.1f}")
    print(f"{f'ray, {args.workers} workers':<22}{parallel:>9.1f}{args.images / parallel:>10.1f}")
    print(
        f"ratio ray / serial (images/s): {serial / parallel:.2f}x; Ray start-up (not included): {startup:.1f} s"
    )
    print(f"outputs pixel-identical: {same}")


if __name__ == "__main__":
    main()
