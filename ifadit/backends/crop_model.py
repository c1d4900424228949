"""What the model backends on canonical crops share: where their model folder is by default, which of its files
are missing, loading a folder once per process, and running a network over crops in batches at the network's
own resolution."""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from ifadit.models.model_folder import CONFIG_FILE, WEIGHTS_FILE

REPO_ROOT = Path(__file__).resolve().parents[2]
Loaded = TypeVar("Loaded", bound=tuple[torch.nn.Module, str, str])  # (model, model id, weights sha256)


def default_model_dir(name: str) -> Path:
    """`$IFADIT_PRETRAINED/<name>`, else `pretrained/<name>` in the source tree."""
    root = os.environ.get("IFADIT_PRETRAINED")
    return (Path(root) if root else REPO_ROOT / "pretrained") / name


def absent_files(folder: Path) -> str | None:
    """'<path>, <path> missing' for the files of a model folder that are not there, or None when none is."""
    absent = [name for name in (CONFIG_FILE, WEIGHTS_FILE) if not (folder / name).is_file()]
    return f"{', '.join(str(folder / n) for n in absent)} missing" if absent else None


def model_folder(model_dir: Path | None, name: str, not_found: Callable[[Path, str], Exception]) -> Path:
    """`model_dir` (default `default_model_dir(name)`) once its files are there; else raise
    `not_found(folder, what is missing)`."""
    folder = Path(model_dir) if model_dir is not None else default_model_dir(name)
    absent = absent_files(folder)
    if absent is not None:
        raise not_found(folder, absent)
    return folder


def loaded_once(folder: Path, load: Callable[[Path], Loaded], device: torch.device) -> Loaded:
    """`load(folder)` once per process while its weights file is unchanged (same inode, size, mtime).

    A lab service anonymizes and restores request after request; reading and hashing the weights and building
    the networks (a noticeable share of a request on CPU) then happens once, not per request. The CPU model
    is shared read-only (inference never changes it); another device gets its own copy.
    """
    stat = (Path(folder) / WEIGHTS_FILE).stat()
    loaded = _load_once(load, str(Path(folder).resolve()), (stat.st_ino, stat.st_size, stat.st_mtime_ns))
    if device.type == "cpu":
        return loaded
    model, model_id, sha256 = loaded
    copied: Loaded = (copy.deepcopy(model), model_id, sha256)  # type: ignore[assignment]
    return copied


@functools.lru_cache(maxsize=4)
def _load_once(load: Callable[[Path], Loaded], folder: str, file_stamp: tuple[int, int, int]) -> Loaded:
    return load(Path(folder))


def map_crops(
    crops: np.ndarray,
    size: int,
    batch_size: int,
    device: torch.device,
    net: Callable[[torch.Tensor], torch.Tensor],
) -> np.ndarray:
    """[N,S,S,3] uint8 -> `net` applied to batches of img in [-1, 1] at `size` px (resized there and back when
    S differs) -> [N,S,S,3] uint8."""
    side = crops.shape[1]
    out = []
    with torch.no_grad():
        for start in range(0, len(crops), batch_size):
            # a writable C-ordered view, or a copy of a read-only array (torch warns on those)
            chunk = torch.from_numpy(np.require(crops[start : start + batch_size], requirements=["C", "W"]))
            img = chunk.to(device).permute(0, 3, 1, 2).float() / 127.5 - 1
            if side != size:
                img = F.interpolate(img, size=(size, size), mode="bilinear", antialias=True)
            img = net(img)
            if side != size:
                img = F.interpolate(img, size=(side, side), mode="bilinear", antialias=side < size)
            out.append(uint8_crops(img))
    return np.concatenate(out) if out else crops.copy()


def uint8_crops(img: torch.Tensor) -> np.ndarray:
    """img [N,3,S,S] in [-1, 1] -> [N,S,S,3] uint8 crops."""
    return ((img.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
