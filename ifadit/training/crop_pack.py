"""A compact JPEG pack of an aligned-crop cache, to carry training crops where a size limit applies.

The crop cache of `ifadit.training.data` holds raw uint8 pixels (58 MB for the 4,718 crops of
celeba-crops/train at 64 px); the device machine takes 64 MiB in all, tracked tree included. A pack holds
each crop as JPEG bytes (quality 95: a 13.8 MB pack for the same crops), one flat uint8 array with offsets, so it
loads with `allow_pickle=False`. JPEG is lossy: a run trained from an unpacked cache has seen slightly
different pixels than one trained from the original cache, and says so through the pack's quality.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from ifadit.errors import InputError
from ifadit.training.data import load_crops, write_npz

PACK_KEYS = ("jpeg", "offsets", "names", "quality")


def pack_crops(cache: Path, out: Path, quality: int = 95) -> int:
    """Write the crops of `cache` (.npz crop cache) as a JPEG pack at `out`; returns the number of crops."""
    if not 1 <= quality <= 100:
        raise InputError(f"JPEG quality must be 1-100, got {quality}")
    crops = load_crops(cache, resolution=None)
    names = _cache_names(cache)
    if names is None or len(names) != len(crops):
        names = np.array([f"{i:06d}" for i in range(len(crops))])
    encoded = []
    for crop in crops.permute(0, 2, 3, 1).numpy():
        buffer = io.BytesIO()
        Image.fromarray(crop).save(buffer, format="JPEG", quality=quality)
        encoded.append(np.frombuffer(buffer.getvalue(), dtype=np.uint8))
    offsets = np.cumsum([0] + [len(e) for e in encoded], dtype=np.int64)
    write_npz(out, jpeg=np.concatenate(encoded), offsets=offsets, names=names, quality=np.array(quality))
    return len(encoded)


def unpack_crops(pack: Path, out: Path) -> int:
    """Decode a JPEG pack into an .npz crop cache at `out`; returns the number of crops."""
    try:
        with np.load(pack, allow_pickle=False) as data:
            missing = [key for key in PACK_KEYS if key not in data]
            if missing:
                raise InputError(f"{pack}: not a crop pack (no {', '.join(missing)})")
            jpeg, offsets, names = data["jpeg"], data["offsets"], data["names"]
    except FileNotFoundError:
        raise InputError(f"{pack}: no such file") from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise InputError(f"{pack}: not a readable crop pack ({exc})") from None
    if len(offsets) != len(names) + 1 or offsets[-1] != len(jpeg):
        raise InputError(f"{pack}: offsets do not match the JPEG bytes (a damaged pack)")
    images = [
        np.asarray(Image.open(io.BytesIO(jpeg[start:end].tobytes())).convert("RGB"))
        for start, end in zip(offsets[:-1], offsets[1:], strict=True)
    ]
    write_npz(out, images=np.stack(images), names=names)
    return len(images)


def _cache_names(cache: Path) -> np.ndarray | None:
    """The `names` array of a crop cache already read once by `load_crops` (None when it has none)."""
    with np.load(cache, allow_pickle=False) as data:
        return data.get("names")
