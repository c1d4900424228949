"""What the model backends on canonical crops share: where their model folder is by default, which of its files
are missing, loading a folder once per process, running a network over crops in batches at the network's own
resolution, and `CropModelBackend`, the constructor of every backend built on one such model folder."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar, cast

import numpy as np
import torch
import torch.nn.functional as F

from ifadit.models.model_folder import CONFIG_FILE, WEIGHTS_FILE
from ifadit.models.shipped import shipped_model_dir

Loaded = TypeVar("Loaded", bound=tuple[torch.nn.Module, str, str])  # (model, model id, weights sha256)
Net = TypeVar("Net", bound=torch.nn.Module)  # a crop model with `config.resolution`


def default_model_dir(name: str) -> Path:
    """Shipped model folder `name`: `$IFADIT_PRETRAINED/<name>`, else the checkout's or the installed package's
    (`ifadit.models.shipped`)."""
    return shipped_model_dir(name)


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


class _Architecture(Protocol):
    resolution: int  # side of the crops the network works at, in pixels


class _Configured(Protocol):
    config: _Architecture  # the model's config.json, as its config dataclass


@dataclass(frozen=True)
class ModelFolder(Generic[Net]):
    """Which model folder a `CropModelBackend` loads, how, and what it raises when the folder is not there."""

    name: str  # folder under pretrained/, e.g. "ifadit-64"
    load: Callable[[Path], tuple[Net, str, str]]  # folder -> (model, model id, weights sha256)
    not_found: Callable[[Path, str], Exception]  # (folder, what is missing) -> the error to raise


class CropModelBackend(Generic[Net]):
    """A backend that runs one trained model folder over canonical crops at the model's resolution.

    The constructor is the same for every such backend; a subclass names its `folder` (a `ModelFolder`).
    """

    folder: ClassVar[ModelFolder[Any]]

    def __init__(
        self,
        model_dir: Path | None = None,
        device: str = "cpu",
        batch_size: int = 16,
        model: tuple[Net, str, str] | None = None,
    ) -> None:
        """Load the model from `model_dir` (default `default_model_dir(folder.name)`), or take a loaded `model`
        as (model, model id, sha256)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        if model is None:
            path = model_folder(model_dir, self.folder.name, self.folder.not_found)
            model = loaded_once(path, self.folder.load, self.device)
        net, self.model_id, self.model_sha256 = model
        self.model: Net = net.eval().to(self.device)
        self.batch_size = batch_size
        self.crop_size = cast(_Configured, net).config.resolution

    def map_crops(self, crops: np.ndarray, net: Callable[[torch.Tensor], torch.Tensor]) -> np.ndarray:
        """`map_crops` at this backend's resolution, batch size and device."""
        return map_crops(crops, self.crop_size, self.batch_size, self.device, net)
