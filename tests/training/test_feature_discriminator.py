"""The feature discriminator: heads on the frozen dlib recognizer's maps learn to tell reals from fakes, pass
gradients to G, and its heads and Adam state are saved and resumed bit-exactly with the rest of the run."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ifadit.errors import InputError
from ifadit.models.dlib_resnet import load_dlib_resnet
from ifadit.training import losses
from ifadit.training.feature_discriminator import FeatureHeads, RecognizerFeatures
from ifadit.training.loop import train_generator
from ifadit.training.options import DLIB_FEATURE_LAYERS, RunControl, read_options
from tests.training.gan_support import checkpoint_tensors, crops_npz, one_torch_thread, tiny_options

__all__ = ["crops_npz", "one_torch_thread"]  # fixtures from gan_support


@pytest.fixture(scope="module")
def features() -> RecognizerFeatures:
    return RecognizerFeatures(load_dlib_resnet().eval().requires_grad_(False), DLIB_FEATURE_LAYERS)


def _faces(astronaut: np.ndarray, n: int) -> torch.Tensor:
    """n 64 px crops around the astronaut's face in [-1, 1]."""
    crops = []
    for i in range(n):
        x0, y0, size = 150 + 5 * i, 50 + 3 * i, 120 + 4 * i
        crop = Image.fromarray(astronaut[y0 : y0 + size, x0 : x0 + size]).resize((64, 64), Image.BICUBIC)
        crops.append(torch.from_numpy(np.array(crop)).permute(2, 0, 1).float() / 127.5 - 1)
    return torch.stack(crops)


def test_heads_score_every_tapped_stage_and_learn_reals_from_fakes(
    features: RecognizerFeatures, astronaut: np.ndarray
) -> None:
    real = _faces(astronaut, 4)
    fake = torch.rand(real.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1  # noise, not faces
    descriptors, maps = features(real)
    assert descriptors.shape == (4, 128)
    assert [m.shape[1] for m in maps] == features.channels == [32, 64, 128]
    torch.manual_seed(0)
    heads = FeatureHeads(features.channels)
    logits = heads(maps)
    assert [tuple(lg.shape) for lg in logits] == [(4, 1) + tuple(m.shape[2:]) for m in maps]
    optimizer = torch.optim.Adam(heads.parameters(), lr=1e-2)
    _, fake_maps = features(fake)
    history = []
    for _ in range(20):
        loss = sum(losses.d_logistic(r, f) for r, f in zip(heads(maps), heads(fake_maps), strict=True))
        history.append(float(loss.detach()))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert history[-1] < 0.5 * history[0]


def test_the_generator_side_loss_reaches_the_pixels(
    features: RecognizerFeatures, astronaut: np.ndarray
) -> None:
    torch.manual_seed(0)
    heads = FeatureHeads(features.channels).requires_grad_(False)
    img = _faces(astronaut, 2).requires_grad_(True)
    _, maps = features(img)
    sum(losses.g_nonsaturating(m) for m in heads(maps)).backward()
    assert img.grad is not None and float(img.grad.abs().sum()) > 0
    assert all(p.grad is None for p in heads.parameters())  # the heads stay as they are in G's step


def test_unknown_stages_are_refused() -> None:
    with pytest.raises(ValueError, match="no feature discriminator tap for \\['fc'\\]"):
        RecognizerFeatures(load_dlib_resnet(), ["blocks.2", "fc"])


def test_a_run_with_the_feature_discriminator_logs_it_and_resumes_bit_exact(
    crops_npz: Path, tmp_path: Path
) -> None:
    straight = tmp_path / "straight"
    state = train_generator(
        tiny_options(crops_npz, straight, steps=4, feature_d_weight=0.5), RunControl(threads=1)
    )
    assert state.F is not None and state.features is not None
    split = tmp_path / "split"
    train_generator(tiny_options(crops_npz, split, steps=2, feature_d_weight=0.5), RunControl(threads=1))
    options = read_options(split)
    assert options.feature_d_weight == 0.5 and options.feature_d_layers == DLIB_FEATURE_LAYERS
    train_generator(dataclasses.replace(options, steps=4), RunControl(resume=True, threads=1))
    a, b = checkpoint_tensors(straight), checkpoint_tensors(split)
    assert set(a) == set(b) and any(key.startswith("F.safetensors:") for key in a)
    assert any(key.startswith("opt_F:") for key in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    lines = [json.loads(line) for line in (split / "metrics.jsonl").read_text().splitlines()]
    assert all(line["loss_D_feature"] > 0 and line["loss_G_feature"] > 0 for line in lines)
    assert "identity_spread" not in lines[0]  # the recognizer runs for the feature D alone


def test_resuming_a_feature_run_without_its_heads_is_refused(crops_npz: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train_generator(tiny_options(crops_npz, run, steps=1, feature_d_weight=1.0), RunControl(threads=1))
    (run / "checkpoints" / "step-0000001" / "F.safetensors").unlink()
    with pytest.raises(InputError, match="F.safetensors: missing"):
        train_generator(dataclasses.replace(read_options(run), steps=2), RunControl(resume=True, threads=1))
