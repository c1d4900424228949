"""Benchmark: ms per face of the identity recognizers beside dlib's C++ descriptor, measured in the same run.

The astronaut's canonical 150 px crop (skimage, HOG + 5-point alignment), repeated to fill a batch, goes through
  baseline     dlib C++ face_recognition_model_v1 (batch call on 150 px chips),
  torch-dlib   ifadit.models.dlib_resnet at batch 1 and 32, and forward + backward to the input at batch 32,
  faceres      ifadit.models.faceres at batch 1 and 32 (skipped with the reason when its weights are missing).
Each figure is the best of ``--repeat`` runs. Target (issue 4): the torch port faster than dlib per face.

Usage: .venv/bin/python benchmarks/recognizers_bench.py [--repeat 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
from skimage import data

from ifadit.errors import ModelError
from ifadit.faces.align import align_face
from ifadit.faces.detect import get_detector
from ifadit.faces.recognize import DlibRecognizer, FaceresRecognizer, TorchDlibRecognizer, crops_to_img


def best_ms_per_face(repeat: int, faces: int, run: Callable[[], object]) -> float:
    run()  # warm-up: first-call allocations and kernel selection
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return min(times) * 1000.0 / faces


def backward(model: torch.nn.Module, img: torch.Tensor) -> None:
    x = img.clone().requires_grad_(True)
    model(x).square().sum().backward()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per figure (best is kept)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    image = data.astronaut()
    face = get_detector("hog").detect(image)[0]
    chip = align_face(image, face.landmarks, size=150).crop
    batch = np.repeat(chip[None], 32, axis=0)

    dlib_rec = DlibRecognizer()
    baseline = best_ms_per_face(args.repeat, 32, lambda: dlib_rec.embed(batch))
    print(f"baseline dlib C++            {baseline:8.2f} ms/face")

    rows: list[tuple[str, float]] = []
    torch_rec = TorchDlibRecognizer()
    img = crops_to_img(batch)
    with torch.no_grad():
        rows.append(
            ("torch-dlib batch 1", best_ms_per_face(args.repeat, 1, lambda: torch_rec.model(img[:1])))
        )
        rows.append(("torch-dlib batch 32", best_ms_per_face(args.repeat, 32, lambda: torch_rec.model(img))))
    model = torch_rec.model.requires_grad_(False)
    rows.append(
        ("torch-dlib fwd+bwd batch 32", best_ms_per_face(args.repeat, 32, lambda: backward(model, img)))
    )
    try:
        faceres = FaceresRecognizer()
    except ModelError as exc:
        print(f"faceres skipped: {exc}")
    else:
        with torch.no_grad():
            rows.append(("faceres batch 1", best_ms_per_face(args.repeat, 1, lambda: faceres.model(img[:1]))))
            rows.append(("faceres batch 32", best_ms_per_face(args.repeat, 32, lambda: faceres.model(img))))
    for name, ms in rows:
        print(f"{name:28} {ms:8.2f} ms/face   {baseline / ms:5.1f}x faster than dlib C++")


if __name__ == "__main__":
    main()
