"""Anonymize and restore the demo astronaut through a photo under many keys: how often each step leaves the
original identifiable by the torch dlib recognizer.

    python scripts/astronaut_keys.py --model pretrained/ifadit-64 --keys 100

For each key (material sha256("astronaut key i"), fixed, not searched for): the face crop is anonymized and
pasted back at `--mask-scale`; the face is re-detected in that photo, restored with the key and with a wrong
key (sha256("astronaut wrong key i")), and pasted back again. Each photo is compared with the original on
the 64 px crop aligned by the original's landmarks (torch dlib, same person when L2 < 0.6), as the shipped-
model CLI tests do. Prints how many keys leave the anonymized photo, the restore and the wrong-key restore
within 0.6 of the original, with the median distances.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
from skimage import data
from tqdm import tqdm

from ifadit.backends.ifadit import IfaditBackend
from ifadit.faces.align import align_face
from ifadit.faces.blend import paste_back
from ifadit.faces.registry import get_detector, get_recognizer
from ifadit.models.recognizer_names import DLIB_THRESHOLD


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped one)")
    parser.add_argument("--keys", type=int, default=100, help="number of keys")
    parser.add_argument("--mask-scale", type=float, default=1.3, help="face ellipse scale of paste-back")
    args = parser.parse_args()
    backend = IfaditBackend(model_dir=args.model)
    detector, recognizer = get_detector("hog"), get_recognizer("torch-dlib")
    image = data.astronaut()
    face = detector.detect(image)[0]
    aligned = align_face(image, face.landmarks, size=backend.crop_size)

    def distances(*photos: np.ndarray) -> np.ndarray:
        """torch dlib distance of each photo's face region (original's alignment) to the original's."""
        crops = [align_face(p, face.landmarks, size=64).crop for p in (image, *photos)]
        embedded = recognizer.embed(np.stack(crops))
        return np.linalg.norm(embedded[1:] - embedded[0], axis=1)

    rows, undetected = [], 0
    for i in tqdm(range(args.keys), desc="keys", unit="key"):
        key = hashlib.sha256(f"astronaut key {i}".encode()).digest()
        wrong = hashlib.sha256(f"astronaut wrong key {i}".encode()).digest()
        surrogate = backend.anonymize_crops(aligned.crop[None], key)[0]
        anonymized = paste_back(image, aligned, surrogate, mask_scale=args.mask_scale)
        found = detector.detect(anonymized)
        if not found:
            undetected += 1
            continue
        again = align_face(anonymized, found[0].landmarks, size=backend.crop_size)
        restored, wrong_restored = (
            paste_back(
                anonymized,
                again,
                backend.restore_crops(again.crop[None], k, pasted_at=args.mask_scale)[0],
                mask_scale=args.mask_scale,
            )
            for k in (key, wrong)
        )
        rows.append(distances(anonymized, restored, wrong_restored))
    table = np.array(rows)
    print(f"model {backend.model_id}, {len(table)} keys (no face re-detected for {undetected})")
    for column, name in enumerate(("anonymized", "restored", "wrong-key restored")):
        values = table[:, column]
        print(
            f"  {name:19s} within {DLIB_THRESHOLD}: {int((values < DLIB_THRESHOLD).sum()):3d} "
            f"(median distance {np.median(values):.3f})"
        )


if __name__ == "__main__":
    main()
