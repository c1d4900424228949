"""What the model backends on canonical crops share: where their model folder is by default, which of its files
are missing, loading a folder once per process, running a network over crops one face at a time at the
network's own resolution, and `CropModelBackend`, the constructor of every backend built on one such model folder.

Why one face at a time, on one CPU thread: batched convolutions and matrix products choose their blocking and
reduction order by batch size and by the number of threads, so a face's output pixels moved by a level when it
shared a batch with other faces, or when a Ray actor (one thread) ran it instead of the serial engine (all
cores). A face run alone, with a fixed thread count, depends on nothing but the face, the key and the model:
the same face gives the same pixels bit for bit whatever it is batched with and whichever engine runs it.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar, cast

import numpy as np
import torch
import torch.nn.functional as F

from ifadit.models.dlib_resnet import refuse_half_copy
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


MODEL_THREADS = (
    1  # intra-op threads of a crop model's forward on CPU: a fixed count makes outputs reproducible
)
_THREADS_LOCK = threading.RLock()  # the thread count is process-wide: one pinned forward at a time


@contextlib.contextmanager
def pinned_threads(device: torch.device) -> Iterator[None]:
    """On CPU, run the block with `MODEL_THREADS` intra-op threads (restored afterwards, one block at a time
    per process); other devices run it as they are."""
    if device.type != "cpu":
        yield
        return
    with _THREADS_LOCK:
        before = torch.get_num_threads()
        torch.set_num_threads(MODEL_THREADS)
        try:
            yield
        finally:
            torch.set_num_threads(before)


def map_crops(
    crops: np.ndarray,
    size: int,
    device: torch.device,
    net: Callable[[torch.Tensor], torch.Tensor],
) -> np.ndarray:
    """[N,S,S,3] uint8 -> `net` applied to each crop alone as img [1,3,size,size] in [-1, 1] (resized there
    and back when S differs), on `MODEL_THREADS` threads -> [N,S,S,3] uint8 (see the module docstring)."""
    side = crops.shape[1]
    out = []
    with torch.no_grad(), pinned_threads(device):
        for index in range(len(crops)):
            # a writable C-ordered view, or a copy of a read-only array (torch warns on those)
            crop = torch.from_numpy(np.require(crops[index : index + 1], requirements=["C", "W"]))
            img = crop.to(device).permute(0, 3, 1, 2).float() / 127.5 - 1
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
        model: tuple[Net, str, str] | None = None,
    ) -> None:
        """Load the model from `model_dir` (default `default_model_dir(folder.name)`), or take a loaded `model`
        as (model, model id, sha256); a float16 recognizer copy named by `$IFADIT_DLIB_RESNET` is refused."""
        self.device = torch.device(device)
        if model is None:
            refuse_half_copy()
            path = model_folder(model_dir, self.folder.name, self.folder.not_found)
            model = loaded_once(path, self.folder.load, self.device)
        net, self.model_id, self.model_sha256 = model
        self.model: Net = net.eval().to(self.device)
        self.crop_size = cast(_Configured, net).config.resolution

    def map_crops(self, crops: np.ndarray, net: Callable[[torch.Tensor], torch.Tensor]) -> np.ndarray:
        """`map_crops` at this backend's resolution and device."""
        return map_crops(crops, self.crop_size, self.device, net)
