"""ID²Face training: one step of each phase lowers its loss on a fixed batch, run files, bit-exact resume, and
`ifadit train id2face` through click on the real dlib recognizer."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from ifadit.errors import InputError
from ifadit.models.id2face import load_id2face
from ifadit.training.id2face import build_model, denoiser_losses, ema_decay, train_id2face, vae_losses
from ifadit.training.options import Id2FaceOptions, RunControl, read_id2face_options
from ifadit_cli.main import cli
from tests.id2face_support import TINY
from tests.ifadit_support import ID_DIM, RES, STANDIN, TinyRecognizer, astronaut_crops, crops_npz, to_img


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray) -> Path:
    return crops_npz(tmp_path_factory.mktemp("id2face"), astronaut_crops(astronaut, 8))


def tiny_options(data: Path, out: Path, **changes: object) -> Id2FaceOptions:
    base = Id2FaceOptions(
        data=str(data),
        out=str(out),
        batch=4,
        vae_batch=8,
        vae_steps=2,
        steps=5,
        recognizer=STANDIN,
        id_dim=ID_DIM,
        stats_samples=4,
        log_every=1,
        sample_every=2,
        grid=3,
        grid_steps=2,
        **TINY,  # type: ignore[arg-type]
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _codes(seed: int) -> torch.Tensor:
    return torch.nn.functional.normalize(
        torch.randn(8, ID_DIM, generator=torch.Generator().manual_seed(seed)), dim=1
    )


def test_one_step_lowers_each_phase_loss_on_a_fixed_batch(
    data: Path, tmp_path: Path, astronaut: np.ndarray
) -> None:
    options = tiny_options(data, tmp_path)
    model = build_model(options, TinyRecognizer()).train()
    u_a, u_b = _codes(1), _codes(2)
    x = to_img(astronaut_crops(astronaut, 4))
    x_a, x_b = x, x.flip(3)

    def vae_loss() -> torch.Tensor:
        torch.manual_seed(0)  # the same posterior draws before and after the step
        return vae_losses(model, u_a, u_b, options)[0]

    def diffusion_loss() -> torch.Tensor:
        torch.manual_seed(0)  # the same timesteps, noise and identity dropout before and after the step
        return denoiser_losses(model, x_a, x_b, u_a[:4], u_b[:4], options)[0]

    for loss_fn, params in (
        (vae_loss, list(model.vae.parameters())),
        (
            diffusion_loss,
            [
                p
                for k in ("encoder", "harmonizer", "denoiser")
                for p in model.learning_modules()[k].parameters()
            ],
        ),
    ):
        optimizer = torch.optim.Adam(params, lr=1e-3)
        before = loss_fn()
        optimizer.zero_grad()
        before.backward()
        optimizer.step()
        with torch.no_grad():
            after = loss_fn()
        assert float(after) < float(before.detach())


def test_vae_terms_on_constructed_pairs(data: Path, tmp_path: Path) -> None:
    model = build_model(tiny_options(data, tmp_path), TinyRecognizer())
    u = _codes(3)
    torch.manual_seed(0)
    _, same = vae_losses(model, u, u, tiny_options(data, tmp_path))
    _, other = vae_losses(model, u, _codes(4), tiny_options(data, tmp_path))
    assert same["vae_align"] == 0.0 and other["vae_align"] > 0.0
    assert 0.0 <= same["vae_rec"] <= 4.0 and same["vae_kl"] >= 0.0


def test_run_writes_metrics_samples_and_a_loadable_model(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    state = train_id2face(tiny_options(data, out), recognizer=TinyRecognizer())
    assert state.step == 5
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2, 3, 4, 5]
    assert [line["phase"] for line in lines] == [1.0, 1.0, 2.0, 2.0, 2.0]
    assert "vae_align" in lines[0] and "diffusion" in lines[2] and 0 <= lines[2]["gate"] <= 1
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step-0000004.png"]  # phase 2 only
    grid = np.asarray(Image.open(out / "samples-latest.png"))
    assert grid.shape == (3 * RES, 5 * RES, 3)  # source | reconstruction | 3 anonymized
    model, model_id, _ = load_id2face(out / "model", recognizer=TinyRecognizer())
    assert model_id.startswith("id2face-") and model.config.resolution == RES
    assert torch.equal(model.id_mean, state.model.id_mean) and model.id_mean.abs().sum() > 0
    assert json.loads((out / "model" / "model_card.json").read_text())["vae_steps"] == 2
    assert read_id2face_options(out) == tiny_options(data, out)
    with pytest.raises(InputError, match="already holds a run"):
        train_id2face(tiny_options(data, out), recognizer=TinyRecognizer())


def test_resume_is_bit_exact(data: Path, tmp_path: Path) -> None:
    """5 steps in one go and 3 + resume + 2 (across the phase boundary) give identical weights and caches."""
    straight = train_id2face(tiny_options(data, tmp_path / "a"), recognizer=TinyRecognizer())
    train_id2face(tiny_options(data, tmp_path / "b", steps=3), recognizer=TinyRecognizer())
    resumed = train_id2face(
        tiny_options(data, tmp_path / "b"), RunControl(resume=True), recognizer=TinyRecognizer()
    )
    assert resumed.step == straight.step == 5
    ours, theirs = straight.model.state_dict(), resumed.model.state_dict()
    for name, tensor in ours.items():
        assert torch.equal(tensor, theirs[name]), name
    assert straight.ema.keys() == resumed.ema.keys()
    assert all(torch.equal(straight.ema[k], resumed.ema[k]) for k in straight.ema)
    assert torch.equal(straight.cache.values, resumed.cache.values)
    steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5]


def test_model_folder_holds_the_weight_average(data: Path, tmp_path: Path) -> None:
    """The saved model is the moving average, not the last weights: with the ramp-up (1 + n) / (10 + n) the
    first denoiser step gives decay 2/11, so after 2 denoiser steps the average lags the weights."""
    assert [ema_decay(n, 0.999) for n in (-1, 0, 1, 2)] == [0.0, 0.0, 2 / 11, 3 / 12]
    assert ema_decay(10**6, 0.999) == 0.999 and ema_decay(5, 0.0) == 0.0
    out = tmp_path / "run"
    state = train_id2face(tiny_options(data, out, steps=4), recognizer=TinyRecognizer())
    saved, _, _ = load_id2face(out / "model", recognizer=TinyRecognizer())
    weights, averaged = state.model.state_dict(), saved.state_dict()
    assert all(torch.equal(averaged[k], state.ema[k]) for k in state.ema)
    lagging = [k for k in state.ema if not torch.equal(averaged[k], weights[k])]
    assert lagging and all(k.split(".")[0] in ("encoder", "harmonizer", "denoiser") for k in lagging)
    name = lagging[0]
    vae = next(k for k in state.ema if k.startswith("vae."))  # frozen after phase 1: its average is itself
    assert torch.equal(averaged[vae], weights[vae])
    off = train_id2face(
        tiny_options(data, tmp_path / "off", steps=4, ema_decay=0.0), recognizer=TinyRecognizer()
    )
    plain, _, _ = load_id2face(tmp_path / "off" / "model", recognizer=TinyRecognizer())
    assert torch.equal(plain.state_dict()[name], off.model.state_dict()[name])


def test_cli_trains_resumes_and_refuses_bad_runs(data: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli"
    fast = ["--threads", "1", "--resolution", str(RES), "--batch", "2", "--sample-every", "1"]
    first = runner.invoke(
        cli,
        [
            "train",
            "id2face",
            "--data",
            str(data),
            "--out",
            str(out),
            "--steps",
            "1",
            "--vae-steps",
            "1",
            *fast,
        ],
    )
    assert first.exit_code == 0, first.output
    assert f"{out}: step 1" in first.stdout
    resumed = runner.invoke(
        cli, ["train", "id2face", "--out", str(out), "--resume", "--steps", "2", "--threads", "1"]
    )
    assert resumed.exit_code == 0, resumed.output
    assert f"{out}: step 2" in resumed.stdout and (out / "samples-latest.png").is_file()
    model, _, _ = load_id2face(out / "model")  # the production recognizer, loaded by name
    assert type(model.recognizer).__name__ == "DlibResNet" and model.config.id_dim == 128

    missing = runner.invoke(cli, ["train", "id2face", "--out", str(tmp_path / "x")])
    assert missing.exit_code == 2 and "--data is required" in missing.output
    nothing = runner.invoke(cli, ["train", "id2face", "--out", str(tmp_path / "y"), "--resume"])
    assert nothing.exit_code == 1 and "options.json: missing" in nothing.output


@pytest.mark.slow
def test_a_denoiser_overfit_on_four_crops_samples_them_back(
    data: Path, tmp_path: Path, astronaut: np.ndarray
) -> None:
    """Training loss and sampler agree: after fitting four crops, DDIM from noise renders them (not noise, not
    their mean). An eps-predicting version failed this at the cosine schedule's a_T ~ 0 (see the diffusion module)."""
    options = tiny_options(data, tmp_path, id_dropout=0.0, shift=0, jitter=0.0, emb_dim=64, channels=(16, 32))
    model = build_model(options, TinyRecognizer()).train()
    x = to_img(astronaut_crops(astronaut, 4))
    u = _codes(5)[:4]
    params = [
        p for k in ("encoder", "harmonizer", "denoiser") for p in model.learning_modules()[k].parameters()
    ]
    optimizer = torch.optim.Adam(params, lr=2e-3)
    for _ in range(1000):
        loss, _ = denoiser_losses(model, x, x, u, u, options)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        identity = model.vae.decode(model.vae.encode(u)[0])
        out = model.sample(identity, model.encoder(x), seed=5, steps=10, guidance=1.0)
    mean_image_error = float((x.mean(0, keepdim=True) - x).square().mean())
    assert float((out - x).square().mean()) < 0.25 * mean_image_error
