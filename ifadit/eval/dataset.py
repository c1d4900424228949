"""The evaluation set: a folder per identity (`<identity>/<image>`), or a flat folder of unlabelled images.

A flat folder (e.g. `celeba-crops/test`) is read as if each image were its own identity, so the figures that
need identities (rank-1, consistency) come out undefined (None) while the rest are measured as usual.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ifadit.eval.reid import IMAGE_SUFFIXES, ReidSet, load_reid_set


def is_flat(root: Path) -> bool:
    """Whether `root` holds images directly and no sub-folders."""
    entries = list(root.iterdir())
    return not any(p.is_dir() for p in entries) and any(p.suffix.lower() in IMAGE_SUFFIXES for p in entries)


def load_eval_set(root: Path, size: int, limit: int | None = None) -> ReidSet:
    """Canonical crops of `root` (see the module docstring) at `size` px; `limit` as in `load_reid_set`."""
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder")
    if not is_flat(root):
        return load_reid_set(root, size=size, limit=limit)
    with tempfile.TemporaryDirectory(prefix="ifadit-eval-") as tmp:
        view = Path(tmp) / root.name  # one identity folder per image, linking to the image in place
        for image in sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            (view / image.stem).mkdir(parents=True)
            (view / image.stem / image.name).symlink_to(image.resolve())
        faces = load_reid_set(view, size=size, limit=limit)
    return ReidSet(
        faces.crops, faces.labels, [root / p.name for p in faces.paths], [root / p.name for p in faces.missed]
    )
