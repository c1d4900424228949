"""How much of a reversible model's restore survives paste-back, for several face-ellipse sizes (--mask-scale).

For every second photo of a re-identification set (never used in training): detect the first face, align it,
anonymize the crop with each of `--keys` fixed keys, paste it back with colour matching at each mask scale,
re-detect the face in the pasted photo, align it again and restore with the same key. Prints, over photos and
keys, the share of faces dlib verifies as the original (L2 < 0.6): on the crops alone, after paste-back
(anonymized), and restored after paste-back and re-detection. The tables behind
`ifadit.pipeline.anonymize.mask_scale_for` come from here.

Example:
    python scripts/paste_back_restore.py --data ../shared/data/reid/deepface --scales 1.0,1.2,1.3,1.5
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

from ifadit.backends.ifadit import IfaditBackend
from ifadit.faces.align import align_face
from ifadit.faces.blend import paste_back
from ifadit.faces.registry import get_detector, get_recognizer
from ifadit.media.image import read_image

KEY = hashlib.sha256(b"ifadit paste-back experiment key").digest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder-per-identity photo set")
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped one)")
    parser.add_argument("--scales", default="1.0,1.2,1.3,1.5")
    parser.add_argument(
        "--keys", type=int, default=1, help="fixed keys per photo (the first is the one earlier tables used)"
    )
    args = parser.parse_args()
    keys = [KEY] + [
        hashlib.sha256(f"ifadit paste-back experiment key {i}".encode()).digest() for i in range(1, args.keys)
    ]
    backend, detector, dlib = IfaditBackend(model_dir=args.model), get_detector("hog"), get_recognizer("dlib")
    scales = [float(s) for s in args.scales.split(",")]
    crop_restored: list[float] = []
    pasted: dict[float, list[float]] = {s: [] for s in scales}
    restored: dict[float, list[float]] = {s: [] for s in scales}
    for path in sorted(args.data.glob("*/*"))[::2]:
        image = read_image(path)
        faces = detector.detect(image)
        if not faces:
            continue
        aligned = align_face(image, faces[0].landmarks, size=backend.crop_size)
        original = dlib.embed(aligned.crop[None])

        def distance(crop: np.ndarray, original: np.ndarray = original) -> float:
            return float(np.linalg.norm(dlib.embed(crop[None]) - original))

        for key in keys:
            anonymized = backend.anonymize_crops(aligned.crop[None], key)
            crop_restored.append(distance(backend.restore_crops(anonymized, key)[0]))
            for scale in scales:
                out = paste_back(image, aligned, anonymized[0], mask_scale=scale)
                pasted[scale].append(
                    distance(align_face(out, faces[0].landmarks, size=backend.crop_size).crop)
                )
                found = detector.detect(out)
                if not found:
                    restored[scale].append(float("inf"))  # a face restore cannot find is not restored
                    continue
                again = align_face(out, found[0].landmarks, size=backend.crop_size).crop
                restored[scale].append(distance(backend.restore_crops(again[None], key, pasted_at=scale)[0]))

    def verified(distances: list[float]) -> float:
        return float(np.mean(np.asarray(distances) < dlib.threshold))

    print(
        f"{args.data} ({len(crop_restored) // len(keys)} faces x {len(keys)} keys, {backend.model_id}): crops alone "
        f"restored {verified(crop_restored):.3f}"
    )
    for scale in scales:
        print(
            f"  mask {scale}: pasted anonymized {verified(pasted[scale]):.3f}, restored after paste-back "
            f"{verified(restored[scale]):.3f} (median distance {np.median(restored[scale]):.3f})"
        )


if __name__ == "__main__":
    main()
