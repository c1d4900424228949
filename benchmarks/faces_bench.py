"""Benchmark: the face stage per 1-megapixel image, beside an OpenCV Gaussian blur of the same image.

One function per stage (detect, align, and the blur backend's full detect -> align -> anonymize ->
paste-back path), each timed best of ``--repeat`` runs on a 1 MP photo with one face:
  baseline  cv2.GaussianBlur of the whole image (sigma 8 px), the cost of the crudest anonymizer,
  detect    each detector (dlib HOG upsample 0, the default; dlib MMOD CNN), with 5-point landmarks,
  align     one 64 px canonical crop (dlib face-chip geometry),
  blur path detect (HOG) + align at 128 px + blur backend + paste_back.
Then detector recall on ../shared/data/reid/deepface and reid/orl: the share of images (one main face each)
where at least one face is found, and the images with more than one box (spurious detections).
Deepface photos are shrunk to at most ``--recall-max-pixels`` first so the CNN pass stays affordable.
Target (issue 4): default path <= 150 ms per 1 MP image with one face on 2 cores.

Usage: .venv/bin/python benchmarks/faces_bench.py [--repeat 5] [--recall-max-pixels 1000000] [--no-recall]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from timing import best_of

from ifadit.backends.base import get_backend
from ifadit.faces.align import align_face
from ifadit.faces.blend import paste_back
from ifadit.faces.detect import Detector, Face
from ifadit.faces.registry import get_detector
from ifadit.media.image import read_image

SHARED = Path(os.environ.get("IFADIT_SHARED", Path(__file__).resolve().parents[2] / "shared"))
BENCH_PHOTO = "data/reid/deepface/person00/img1.jpg"  # a 1382x1868 portrait with one face


def best_ms(repeat: int, run: Callable[[], object]) -> float:
    """Fastest of `repeat` runs, in milliseconds."""
    return 1000 * best_of(repeat, run)


def resize_to_pixels(image: np.ndarray, pixels: int) -> np.ndarray:
    """Scale keeping the aspect ratio so that the image has about `pixels` pixels (never upscales past it)."""
    height, width = image.shape[:2]
    factor = (pixels / (height * width)) ** 0.5
    if factor >= 1:
        return image
    size = (max(round(width * factor), 1), max(round(height * factor), 1))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def one_megapixel_photo() -> np.ndarray:
    """A real 1 MP photo with one face: the deepface portrait, resized to exactly 1,000,000-ish pixels."""
    image = read_image(SHARED / BENCH_PHOTO)
    height, width = image.shape[:2]
    factor = (1_000_000 / (height * width)) ** 0.5
    return cv2.resize(image, (round(width * factor), round(height * factor)), interpolation=cv2.INTER_AREA)


def stage_baseline(image: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigmaX=8)


def stage_detect(detector: Detector, image: np.ndarray) -> list[Face]:
    return detector.detect(image)


def stage_align(image: np.ndarray, faces: list[Face], size: int = 64) -> list[np.ndarray]:
    return [align_face(image, face.landmarks, size).crop for face in faces]


def stage_blur_path(detector: Detector, image: np.ndarray) -> np.ndarray:
    backend = get_backend("blur")
    out = image
    for face in detector.detect(image):
        aligned = align_face(image, face.landmarks, backend.crop_size)
        new = backend.anonymize_crops(np.asarray(aligned.crop)[None], None)[0]
        out = paste_back(out, aligned, new, colour_match=backend.colour_match)
    return out


def speed(repeat: int) -> None:
    image = one_megapixel_photo()
    print(
        f"image: {BENCH_PHOTO} resized to {image.shape[1]}x{image.shape[0]} ({image.shape[0] * image.shape[1]:,} px)"
    )
    print(f"cv2 threads: {cv2.getNumThreads()}, CPUs: {os.cpu_count()}")
    baseline = best_ms(repeat, lambda: stage_baseline(image))
    hog = get_detector("hog")
    cnn = get_detector("cnn")
    faces = stage_detect(hog, image)
    print(f"faces found by hog: {len(faces)}")
    rows = [
        ("detect hog (upsample 0) + 5 landmarks", best_ms(repeat, lambda: stage_detect(hog, image))),
        ("detect cnn (MMOD) + 5 landmarks", best_ms(max(1, repeat // 2), lambda: stage_detect(cnn, image))),
        ("align 64 px (per face)", best_ms(repeat, lambda: stage_align(image, faces[:1]))),
        (
            "blur path: hog + align 128 + blur + paste_back",
            best_ms(repeat, lambda: stage_blur_path(hog, image)),
        ),
    ]
    print(f"\n{'stage':<50} {'ms':>9} {'baseline ms':>12} {'ratio':>8}")
    for name, ms in rows:
        print(f"{name:<50} {ms:9.2f} {baseline:12.2f} {ms / baseline:8.2f}")


def embed_speed(repeat: int) -> None:
    """Identity embedding per face (issue 4, recognizers): dlib's C++ descriptor as the in-run baseline.

    The photo's 150 px canonical crop, repeated to fill a batch: dlib C++ (batch call), the torch port at
    batch 1 and 32 and forward + backward to the input at batch 32, faceres at batch 1 and 32 (skipped with
    the reason when its weights are missing); then the default path per 1 MP image: hog + align 150 + embed.
    """
    import torch

    from ifadit.errors import ModelError
    from ifadit.faces.recognize import DlibRecognizer, FaceresRecognizer, TorchDlibRecognizer, crops_to_img

    image = one_megapixel_photo()
    hog = get_detector("hog")
    crops = np.repeat(stage_align(image, hog.detect(image)[:1], 150)[0][None], 32, axis=0)
    img = crops_to_img(crops)
    dlib_rec, torch_rec = DlibRecognizer(), TorchDlibRecognizer()
    dlib_rec.embed(crops[:1])
    baseline = best_ms(repeat, lambda: dlib_rec.embed(crops)) / 32

    def backward() -> None:
        x = img.clone().requires_grad_(True)
        torch_rec.model(x).square().sum().backward()

    models: list[tuple[str, torch.nn.Module]] = [("torch-dlib", torch_rec.model)]
    try:
        models.append(("faceres", FaceresRecognizer().model))
    except ModelError as exc:
        print(f"\nfaceres skipped: {exc}")
    rows = []
    with torch.no_grad():
        for name, model in models:
            model(img[:1])  # warm-up
            rows.append((f"embed {name} batch 1", best_ms(repeat, lambda m=model: m(img[:1])), baseline))
            rows.append(
                (f"embed {name} batch 32 (per face)", best_ms(repeat, lambda m=model: m(img)) / 32, baseline)
            )
    rows.append(("embed torch-dlib fwd+bwd batch 32 (per face)", best_ms(repeat, backward) / 32, baseline))

    def path(recognizer: DlibRecognizer | TorchDlibRecognizer) -> None:
        recognizer.embed(np.stack(stage_align(image, hog.detect(image), 150)))

    rows.append(
        ("path: hog + align 150 + embed torch-dlib (per image)", best_ms(repeat, lambda: path(torch_rec)),
         best_ms(repeat, lambda: path(dlib_rec)))
    )  # fmt: skip
    print(
        f"\n{'embed stage (torch threads ' + str(torch.get_num_threads()) + ')':<52} {'ms':>9} {'dlib C++ ms':>12} {'ratio':>6}"
    )
    for name, ms, base in rows:
        print(f"{name:<52} {ms:9.2f} {base:12.2f} {ms / base:6.2f}")


def recall(max_pixels: int) -> None:
    sets = {
        "reid/deepface": sorted((SHARED / "data/reid/deepface").glob("*/*.jpg")),
        "reid/orl": sorted((SHARED / "data/reid/orl").glob("*/*.pgm")),
    }
    print(
        f"\n{'detector':<10} {'set':<15} {'found':>9} {'recall':>7} {'>1 box':>7} {'s':>7}  (images <= {max_pixels:,} px)"
    )
    for set_name, paths in sets.items():
        images = [resize_to_pixels(read_image(path), max_pixels) for path in paths]
        for name in ("hog", "cnn"):
            detector = get_detector(name)
            t0 = time.perf_counter()
            counts = np.array([len(stage_detect(detector, image)) for image in images])
            seconds = time.perf_counter() - t0
            found = int((counts >= 1).sum())
            print(
                f"{name:<10} {set_name:<15} {found:>4}/{len(images):<4} {found / len(images):7.3f} "
                f"{int((counts > 1).sum()):>7} {seconds:7.1f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per stage; the best counts")
    parser.add_argument(
        "--recall-max-pixels", type=int, default=1_000_000, help="shrink recall images to this"
    )
    parser.add_argument("--no-recall", action="store_true", help="skip the recall measurement")
    args = parser.parse_args()
    speed(args.repeat)
    embed_speed(args.repeat)
    if not args.no_recall:
        recall(args.recall_max_pixels)


if __name__ == "__main__":
    main()
