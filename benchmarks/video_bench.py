"""Benchmark: video encode/decode frames per second at 640x480 for each `VideoWriter` codec.

Frames are a camera pan over a natural photo (skimage's astronaut, upscaled), 640x480 RGB. Each figure is
the best of ``--repeat`` runs and is printed beside the baseline measured in the same run: dlib HOG face
detection (upsample 0) on the same frames, the per-frame work the anonymization pipeline does anyway, so
a ratio above 1 means video I/O is not the bottleneck.

Usage: .venv/bin/python benchmarks/video_bench.py [--frames 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from skimage import data

from ifadit.faces.registry import get_detector
from ifadit.media.video import VideoCodec, VideoWriter, read_frames

WIDTH, HEIGHT = 640, 480
OUTPUTS: dict[VideoCodec, str] = {"ffv1": "pan.mkv", "h264": "pan.mp4", "png": "pan-frames"}


def pan(frames: int) -> list[np.ndarray]:
    """`frames` 640x480 windows sliding over a 1280x1280 photo (4 px right, 2 px down per frame)."""
    photo = cv2.resize(data.astronaut(), (1280, 1280), interpolation=cv2.INTER_CUBIC)
    return [
        np.ascontiguousarray(photo[200 + 2 * i : 200 + 2 * i + HEIGHT, 4 * i : 4 * i + WIDTH])
        for i in range(frames)
    ]


def best_fps(run: Callable[[], None], frames: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return frames / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    frames = pan(args.frames)
    detector = get_detector("hog")
    baseline = best_fps(lambda: [detector.detect(frame) for frame in frames], len(frames), args.repeat)
    print(f"{len(frames)} frames {WIDTH}x{HEIGHT}, best of {args.repeat}")
    print(f"{'baseline: HOG detect':<24}{baseline:8.1f} frames/s")
    with tempfile.TemporaryDirectory() as tmp:
        for codec, name in OUTPUTS.items():
            path = Path(tmp) / name

            def encode(codec: VideoCodec = codec, path: Path = path) -> None:
                if path.is_dir():
                    for file in path.iterdir():
                        file.unlink()
                    path.rmdir()
                with VideoWriter(path, fps=25, codec=codec) as writer:
                    for frame in frames:
                        writer.write(frame)

            def decode(path: Path = path) -> None:
                for _ in read_frames(path):
                    pass

            encoded = best_fps(encode, len(frames), args.repeat)
            decoded = best_fps(decode, len(frames), args.repeat)
            size = sum(f.stat().st_size for f in path.iterdir()) if path.is_dir() else path.stat().st_size
            exact = all(np.array_equal(a, b) for a, b in zip(read_frames(path), frames, strict=True))
            for verb, fps in (("encode", encoded), ("decode", decoded)):
                print(f"{codec + ' ' + verb:<24}{fps:8.1f} frames/s   x{fps / baseline:5.2f} of baseline")
            print(f"{codec + ' size':<24}{size / len(frames) / 1e3:8.1f} kB/frame   bit-exact: {exact}")


if __name__ == "__main__":
    main()
