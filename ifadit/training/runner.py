"""Resumable loop shared by every training run (`run_loop`), and the run folder of the two iFADIT phases.

Run folder layout (`options.out`):
  options.json                        the run's options (resume reads them back)
  metrics.jsonl                       one JSON object per `log_every` steps
  samples-latest.png, samples/step-XXXXXXX.png   the phase's sample grid
  checkpoints/latest.json             {"step": ..., "path": ...} of the newest complete checkpoint
  checkpoints/step-XXXXXXX/model/     an iFADIT model folder (`ifadit.models.ifadit.checkpoint.load_ifadit`)
  checkpoints/step-XXXXXXX/state.pt, state.json   optimizer, torch RNG, counters (newest `keep_states` kept)
  model/                              copy of the newest checkpoint's model folder (what gets shipped)
All randomness (batches, keys, augmentation) comes from torch's global CPU generator, saved in every
checkpoint, so N steps in one go and N/2 + resume + N/2 give bit-identical weights on the same device.
Checkpoints hold CPU tensors, so a run may move between CPU and CUDA on resume.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file
from torch import nn

from ifadit.errors import InputError
from ifadit.models.model_folder import WEIGHTS_FILE, write_json
from ifadit.models.recognizer_model import RECOGNIZER_PREFIX
from ifadit.training.options import RunControl, latest_checkpoint

if TYPE_CHECKING:
    from ifadit.models.ifadit.model import IfaditModel

MODEL_DIR = "model"


class Schedule(Protocol):
    """The fields of a phase's (frozen) options that the loop reads."""

    @property
    def out(self) -> str: ...
    @property
    def steps(self) -> int | None: ...
    @property
    def batch(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def log_every(self) -> int: ...
    @property
    def sample_every(self) -> int: ...
    @property
    def checkpoint_minutes(self) -> float: ...
    @property
    def keep_states(self) -> int: ...


@dataclass
class PhaseState:
    """Model, optimizer and counters of a run."""

    model: IfaditModel
    optimizer: torch.optim.Optimizer
    step: int = 0
    nimg: int = 0
    wall_seconds: float = 0.0


def model_folder(path: Path) -> Path:
    """An iFADIT model folder from a model folder or a run folder (its newest `model/`)."""
    path = Path(path)
    if (path / "config.json").is_file():
        return path
    if (path / MODEL_DIR / "config.json").is_file():
        return path / MODEL_DIR
    raise InputError(f"{path}: neither an iFADIT model folder nor a run folder with {MODEL_DIR}/config.json")


def write_png(array: np.ndarray, path: Path) -> None:
    """Write uint8 HxWx3 `array` as PNG atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(array).save(tmp, format="PNG")
    os.replace(tmp, path)


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """img [N,3,R,R] in [-1, 1] -> uint8 [N,R,R,3]."""
    return ((img.detach().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def grid_image(columns: list[torch.Tensor]) -> np.ndarray:
    """Rows = faces, columns = the given image batches (each [N,3,R,R]), as one uint8 image."""
    tiles = np.stack([to_uint8(c) for c in columns], axis=1)  # [N, C, R, R, 3]
    n, c, r, _, _ = tiles.shape
    return tiles.transpose(0, 2, 1, 3, 4).reshape(n * r, c * r, 3)


class Counters(Protocol):
    """The progress counters every run state carries (saved in state.json)."""

    step: int
    nimg: int
    wall_seconds: float


def write_checkpoint(
    counters: Counters,
    out: Path,
    keep_states: int,
    save_model: Callable[[Path], object],
    extra: dict[str, Any],
) -> Path:
    """Write checkpoints/step-XXXXXXX/{model/ (by `save_model`), state.pt (`extra`), state.json} of run folder
    `out` atomically, point latest.json at it, refresh `out/model/` and keep the newest `keep_states`."""
    root = out / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{counters.step:07d}"
    tmp = root / f".tmp-step-{counters.step:07d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_model(tmp / MODEL_DIR)
    torch.save(extra, tmp / "state.pt")
    write_json(
        tmp / "state.json",
        {"step": counters.step, "nimg": counters.nimg, "wall_seconds": counters.wall_seconds},
    )
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    write_json(root / "latest.json", {"step": counters.step, "path": final.name})
    export = out / f".{MODEL_DIR}.tmp"
    shutil.rmtree(export, ignore_errors=True)
    shutil.copytree(final / MODEL_DIR, export)
    shutil.rmtree(out / MODEL_DIR, ignore_errors=True)
    os.replace(export, out / MODEL_DIR)
    for old in sorted(root.glob("step-*"))[: -max(keep_states, 1)]:
        shutil.rmtree(old)
    return final


def read_checkpoint(counters: Counters, model: nn.Module, out: Path, skip: str) -> dict[str, Any]:
    """Load the newest checkpoint of run folder `out` into `model` (every tensor but those starting with
    `skip`) and `counters`; returns its state.pt (optimizers, RNG, ...)."""
    folder = latest_checkpoint(out)
    if folder is None:
        latest = Path(out) / "checkpoints" / "latest.json"
        raise InputError(f"{latest}: missing, nothing to resume in {out}")
    tensors = load_file(str(folder / MODEL_DIR / WEIGHTS_FILE))
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if unexpected or any(not k.startswith(skip) for k in missing):
        raise InputError(f"{folder}: its model does not match this run's architecture")
    extra: dict[str, Any] = torch.load(folder / "state.pt", weights_only=True)
    info = json.loads((folder / "state.json").read_text())
    counters.step, counters.nimg, counters.wall_seconds = info["step"], info["nimg"], info["wall_seconds"]
    return extra


def save_state(state: PhaseState, options: Schedule) -> Path:
    """Write the model folder and training state under checkpoints/step-XXXXXXX; point latest.json at it."""
    from ifadit.models.ifadit.checkpoint import save_ifadit

    card = {"steps": state.step, "kimg": state.nimg / 1000, "wall_seconds": round(state.wall_seconds, 1)}
    return write_checkpoint(
        state,
        Path(options.out),
        options.keep_states,
        lambda folder: save_ifadit(state.model, folder, name=options.name, card=card),
        {"optimizer": state.optimizer.state_dict(), "rng": torch.get_rng_state()},
    )


def load_state(state: PhaseState, out: Path) -> None:
    """Restore model weights, optimizer, RNG and counters from the newest checkpoint of run folder `out`."""
    extra = read_checkpoint(state, state.model, out, RECOGNIZER_PREFIX)
    state.optimizer.load_state_dict(extra["optimizer"])
    torch.set_rng_state(extra["rng"])


def prepare_run(options: Any, resume: bool) -> None:
    """Create the run folder; refuse to overwrite a run unless resuming; write options.json."""
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "samples").mkdir(exist_ok=True)
    if not resume and (out / "checkpoints" / "latest.json").exists():
        raise InputError(
            f"{out} already holds a run", hint="pass --resume to continue it or choose another --out"
        )
    if not resume:
        (out / "metrics.jsonl").unlink(missing_ok=True)
    write_json(out / "options.json", dataclasses.asdict(options))


def random_batch(crops: torch.Tensor, batch: int) -> torch.Tensor:
    """`batch` crops drawn with replacement by torch's global generator."""
    return crops[torch.randint(0, len(crops), [batch])]


def truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines written after `step` (a run that died after its last checkpoint)."""
    if path.is_file():
        lines = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
        path.write_text("".join(f"{ln}\n" for ln in lines))


class MetricsLog:
    """Per-step stats, averaged over the steps since the last line and appended to metrics.jsonl as one line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.window: dict[str, list[float]] = {}

    def add(self, stats: dict[str, float]) -> None:
        """Collect one step's stats."""
        for k, v in stats.items():
            self.window.setdefault(k, []).append(v)

    def write(self, head: dict[str, float]) -> None:
        """Append `head` followed by the means of the collected stats; start a new window."""
        line = {**head, **{k: float(np.mean(v)) for k, v in self.window.items()}}
        with self.path.open("a") as fh:
            fh.write(json.dumps(line) + "\n")
        self.window = {}


def write_samples(grid: np.ndarray, out: Path, step: int) -> None:
    """A sample grid as samples/step-XXXXXXX.png and samples-latest.png of run folder `out`."""
    write_png(grid, out / "samples" / f"step-{step:07d}.png")
    write_png(grid, out / "samples-latest.png")


def run_loop(
    state: Counters,
    options: Schedule,
    control: RunControl,
    train_step: Callable[[], dict[str, float]],
    sample_grid: Callable[[], np.ndarray | None],
    save: Callable[[], object],
    images: Callable[[dict[str, float]], int] | None = None,
    exclude_sampling_time: bool = False,
    counted: bool = False,
    head: Callable[[], dict[str, float]] | None = None,
) -> None:
    """Step until `options.steps` (or KeyboardInterrupt), logging, sampling and checkpointing (`save`) on the way;
    `control.on_step` after every step, `control.clock` for step times and checkpoint intervals.

    `train_step` draws its batch and returns its stats; the loop then counts the step and `images(stats)` images
    (default `options.batch`), unless `counted` (the step counts itself, as the generator's does).
    `sample_grid` may return None (no grid at this step); `exclude_sampling_time` keeps the time spent on grids
    out of `wall_seconds`; `head()` adds figures to each metrics line after "step".
    """
    out = Path(options.out)
    metrics = MetricsLog(out / "metrics.jsonl")
    truncate_metrics(metrics.path, state.step)
    clock = control.clock
    last_ckpt = t_step = clock()
    try:
        while options.steps is None or state.step < options.steps:
            stats = train_step()
            if not counted:
                state.step += 1
                state.nimg += options.batch if images is None else images(stats)
            now = clock()
            state.wall_seconds += now - t_step
            stats["sec_per_step"] = now - t_step
            t_step = now
            metrics.add(stats)
            if state.step % options.log_every == 0:
                extra = head() if head is not None else {}
                metrics.write({"step": state.step, **extra, "wall_seconds": round(state.wall_seconds, 1)})
            if state.step % options.sample_every == 0:
                grid = sample_grid()
                if grid is not None:
                    write_samples(grid, out, state.step)
                    if exclude_sampling_time:
                        t_step = clock()
            if now - last_ckpt >= options.checkpoint_minutes * 60:
                save()
                last_ckpt = t_step = clock()
            if control.on_step is not None:
                control.on_step(state.step, stats)
    except KeyboardInterrupt:
        save()
        raise
    save()
