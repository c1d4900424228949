"""Shared parts of the generator-training tests: a tiny 16 px crop set, tiny run options, checkpoint tensors."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from ifadit.training.loop import TrainOptions

RES = 16


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread: on a shared 2-core CPU, two torch threads mostly wait on each other."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def crops_npz(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray) -> Path:
    """8 real 16 px crops around the astronaut's face (different offsets and sizes)."""
    images = []
    for i in range(8):
        x0, y0, size = 150 + 6 * i, 50 + 4 * i, 120 + 5 * i
        crop = Image.fromarray(astronaut[y0 : y0 + size, x0 : x0 + size]).resize((RES, RES), Image.BICUBIC)
        images.append(np.asarray(crop))
    path = tmp_path_factory.mktemp("data") / "crops-16.npz"
    np.savez(path, images=np.stack(images), names=np.array([f"a{i}" for i in range(8)]))
    return path


def tiny_options(data: Path, out: Path, **changes: object) -> TrainOptions:
    base = TrainOptions(
        data=str(data),
        out=str(out),
        resolution=RES,
        batch=4,
        steps=4,
        z_dim=16,
        w_dim=16,
        mapping_layers=2,
        channel_base=128,
        channel_max=16,
        r1_interval=2,
        pl_weight=1.0,
        pl_interval=2,
        ada_interval=1,
        ada_kimg=0.5,
        log_every=1,
        sample_every=2,
        checkpoint_minutes=1e9,
        grid=2,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def checkpoint_tensors(run: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the run's newest full checkpoint: weights, Adam slots, RNG state."""
    folder = run / "checkpoints" / json.loads((run / "checkpoints" / "latest.json").read_text())["path"]
    out = {}
    for name in ("G.safetensors", "D.safetensors", "F.safetensors", "G_ema/model.safetensors"):
        if (folder / name).is_file():  # F: only runs with the feature discriminator
            out.update({f"{name}:{k}": v for k, v in load_file(str(folder / name)).items()})
    state = torch.load(folder / "state.pt", weights_only=True)
    for opt in ("opt_G", "opt_D", "opt_F"):
        for idx, slots in (state[opt] or {"state": {}})["state"].items():
            out.update({f"{opt}:{idx}:{k}": torch.as_tensor(v) for k, v in slots.items()})
    out["rng"] = state["rng"]
    return out
