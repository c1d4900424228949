"""GAN training: losses fall on a fixed batch, save/resume is bit-exact, ADA reacts to an overfitting D."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ifadit.errors import InputError
from ifadit.models.stylegan2.checkpoint import load_generator, save_generator
from ifadit.models.stylegan2.networks import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
from ifadit.training import losses
from ifadit.training.augment import AdaController, AugmentPipe
from ifadit.training.data import load_crops, to_model_range
from ifadit.training.loop import TrainState, train_generator
from ifadit.training.options import RunControl, read_options
from tests.training.gan_support import RES, checkpoint_tensors, crops_npz, one_torch_thread, tiny_options

__all__ = ["crops_npz", "one_torch_thread"]  # fixtures from gan_support


def test_discriminator_and_generator_steps_lower_their_losses_on_a_fixed_batch(crops_npz: Path) -> None:
    """5 Adam steps on D (fixed reals and fakes) lower d_logistic; then 5 on G (fixed z, D frozen) lower G's loss."""
    torch.manual_seed(0)
    G = Generator(
        GeneratorConfig(
            img_resolution=RES, z_dim=16, w_dim=16, mapping_layers=2, channel_base=128, channel_max=16
        )
    )
    D = Discriminator(DiscriminatorConfig(img_resolution=RES, channel_base=128, channel_max=16))
    real = to_model_range(load_crops(crops_npz, RES)[:4])
    z = torch.randn(4, 16)
    with torch.no_grad():
        fake = G(z, noise_mode="const")
    opt_d = torch.optim.Adam(D.parameters(), lr=0.002, betas=(0.0, 0.99))
    d_losses = []
    for _ in range(6):
        loss = losses.d_logistic(D(real), D(fake))
        d_losses.append(float(loss.detach()))
        opt_d.zero_grad()
        loss.backward()
        opt_d.step()
    assert d_losses[-1] < d_losses[0]

    D.requires_grad_(False)
    opt_g = torch.optim.Adam(G.parameters(), lr=0.002, betas=(0.0, 0.99))
    g_losses = []
    for _ in range(6):
        loss = losses.g_nonsaturating(D(G(z, noise_mode="const")))
        g_losses.append(float(loss.detach()))
        opt_g.zero_grad()
        loss.backward()
        opt_g.step()
    assert g_losses[-1] < g_losses[0]


def test_r1_penalty_is_the_squared_input_gradient() -> None:
    x = torch.randn(3, 1, 2, 2, requires_grad=True)
    logits = (2 * x).sum(dim=[1, 2, 3])  # gradient 2 everywhere: |grad|^2 = 4 * 4 pixels
    torch.testing.assert_close(losses.r1_penalty(x, logits), torch.full([3], 16.0))


def test_save_and_resume_is_bit_exact(crops_npz: Path, tmp_path: Path) -> None:
    """4 steps in one run == 2 steps + resume + 2 steps, compared tensor by tensor (weights, Adam slots, RNG)."""
    straight = tmp_path / "straight"
    train_generator(tiny_options(crops_npz, straight, steps=4), RunControl(threads=1))
    split = tmp_path / "split"
    train_generator(tiny_options(crops_npz, split, steps=2), RunControl(threads=1))
    train_generator(dataclasses.replace(read_options(split), steps=4), RunControl(resume=True, threads=1))

    a, b = checkpoint_tensors(straight), checkpoint_tensors(split)
    assert set(a) == set(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    lines = [json.loads(line) for line in (split / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2, 3, 4]
    assert (
        max(line["ada_p"] for line in lines) > 0
    )  # the resumed state included a live augmentation probability
    assert (split / "samples-latest.png").is_file() and (split / "samples" / "step-0000004.png").is_file()
    generator, model_id = load_generator(split / "checkpoints" / "step-0000004" / "G_ema")
    assert model_id.startswith("stylegan2-celeba-") and generator(torch.randn(1, 16)).shape == (
        1,
        3,
        RES,
        RES,
    )


def test_a_new_run_refuses_an_existing_run_folder(crops_npz: Path, tmp_path: Path) -> None:
    options = tiny_options(crops_npz, tmp_path / "run", steps=1)
    train_generator(options, RunControl(threads=1))
    with pytest.raises(InputError, match="already holds a run"):
        train_generator(options, RunControl(threads=1))


def test_ada_probability_rises_when_the_discriminator_overfits_a_tiny_set(crops_npz: Path) -> None:
    """D trained on 8 reals against fixed fakes soon scores the reals positive (r_t > 0.6 target): the controller,
    fed by D's outputs on augmented reals every 4 steps, raises p by 8 * 4 / 320 = 0.1 per adjustment.
    Over 10 adjustments p must reach >= 0.5, i.e. at least 8 of them went up (seeds 0-2 reach 0.8-1.0)."""
    torch.manual_seed(0)
    G = Generator(
        GeneratorConfig(
            img_resolution=RES, z_dim=16, w_dim=16, mapping_layers=2, channel_base=128, channel_max=16
        )
    )
    D = Discriminator(DiscriminatorConfig(img_resolution=RES, channel_base=256, channel_max=32))
    real = to_model_range(load_crops(crops_npz, RES))
    with torch.no_grad():
        fake = G(torch.randn(8, 16), noise_mode="const")
    pipe, ada = AugmentPipe(), AdaController(target=0.6, interval=4, speed_kimg=0.32)
    opt = torch.optim.Adam(D.parameters(), lr=0.0025, betas=(0.0, 0.99))
    rts = []
    for _ in range(40):
        real_logits = D(pipe(real))
        ada.accumulate(real_logits)
        loss = losses.d_logistic(real_logits, D(pipe(fake)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        pipe.p.fill_(ada.step(batch_size=8))
        if ada.steps == 0:
            rts.append(ada.last_rt)
    assert len(rts) == 10
    assert sum(rt > 0.6 for rt in rts) >= 8
    assert ada.p >= 0.5 - 1e-9
    assert float(pipe.p) == pytest.approx(ada.p)


def test_ada_controller_moves_by_the_sign_of_rt() -> None:
    ada = AdaController(target=0.6, interval=2, speed_kimg=0.1)
    for _ in range(2):
        ada.accumulate(torch.ones(10))  # r_t = 1 > 0.6
        ada.step(batch_size=10)
    assert ada.p == pytest.approx(0.2)  # 10 images * 2 steps / 100
    for _ in range(2):
        ada.accumulate(-torch.ones(10))  # r_t = -1 < 0.6
        ada.step(batch_size=10)
    assert ada.p == pytest.approx(0.0)


def test_augment_pipe_is_identity_at_p0_and_differentiable_at_p1(astronaut: np.ndarray) -> None:
    img = to_model_range(torch.from_numpy(astronaut[None, :64, :64].copy()).permute(0, 3, 1, 2)).repeat(
        4, 1, 1, 1
    )
    pipe = AugmentPipe()
    assert torch.equal(pipe(img), img)
    pipe.p.fill_(1.0)
    x = img.clone().requires_grad_(True)
    out = pipe(x)
    assert out.shape == img.shape and not torch.allclose(out, img)
    out.square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_load_crops_reports_wrong_files(tmp_path: Path, crops_npz: Path) -> None:
    with pytest.raises(InputError, match="crops are 16x16 px but the resolution is 64"):
        load_crops(crops_npz, 64)
    bad = tmp_path / "bad.npz"
    np.savez(bad, pixels=np.zeros(3))
    with pytest.raises(InputError, match="no 'images' array"):
        load_crops(bad, 16)
    with pytest.raises(InputError, match="no such file"):
        load_crops(tmp_path / "absent.npz", 16)


def test_warm_start_loads_g_and_the_d_warmup_trains_only_d(crops_npz: Path, tmp_path: Path) -> None:
    """--init-generator: G and G_ema start as the checkpoint; during d_warmup_steps G stays fixed, D learns."""
    source = train_generator(tiny_options(crops_npz, tmp_path / "source", steps=2))
    save_generator(source.G_ema, tmp_path / "init", name="init")
    state = train_generator(
        tiny_options(
            crops_npz,
            tmp_path / "warm",
            steps=3,
            seed=7,
            init_generator=str(tmp_path / "init"),
            d_warmup_steps=3,
        )
    )
    reference = dict(source.G_ema.named_parameters())  # buffers differ: w_avg keeps tracking W
    for name, tensor in [*state.G.named_parameters(), *state.G_ema.named_parameters()]:
        assert torch.equal(tensor, reference[name]), name
    fresh_d = train_generator(tiny_options(crops_npz, tmp_path / "fresh", steps=0, seed=7)).D.state_dict()
    changed = [
        n for n, t in state.D.state_dict().items() if t.is_floating_point() and not torch.equal(t, fresh_d[n])
    ]
    assert changed, "D did not train during the warm-up"
    lines = [json.loads(ln) for ln in (tmp_path / "warm" / "metrics.jsonl").read_text().splitlines()]
    assert all("loss_G" not in ln and "loss_D" in ln for ln in lines)


def test_warm_start_refuses_a_generator_of_another_architecture(crops_npz: Path, tmp_path: Path) -> None:
    other = Generator(
        GeneratorConfig(
            img_resolution=RES, z_dim=8, w_dim=8, mapping_layers=1, channel_base=64, channel_max=8
        )
    )
    save_generator(other, tmp_path / "other", name="other")
    with pytest.raises(InputError, match="architecture"):
        train_generator(tiny_options(crops_npz, tmp_path / "run", init_generator=str(tmp_path / "other")))


def test_a_wider_run_starts_from_the_checkpoint_widened(crops_npz: Path, tmp_path: Path) -> None:
    """A wider channel_base / channel_max than --init-generator's: same images at step 0, more parameters."""
    source = train_generator(tiny_options(crops_npz, tmp_path / "source", steps=1))
    save_generator(source.G_ema, tmp_path / "init", name="init")
    wide = tiny_options(crops_npz, tmp_path / "wide", steps=0, init_generator=str(tmp_path / "init"))
    state = train_generator(dataclasses.replace(wide, channel_base=256, channel_max=32))
    sizes = [sum(p.numel() for p in g.parameters()) for g in (state.G_ema, source.G_ema)]
    assert sizes[0] > sizes[1]
    z = torch.randn(4, 16, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = source.G_ema.eval()(z, noise_mode="none")
        torch.testing.assert_close(state.G_ema.eval()(z, noise_mode="none"), expected, rtol=0, atol=1e-5)
    narrower = dataclasses.replace(wide, out=str(tmp_path / "narrow"), channel_base=64)
    with pytest.raises(InputError, match=r"init: .*fewer channels"):
        train_generator(narrower)


def test_noise_mode_none_trains_and_samples_without_noise(crops_npz: Path, tmp_path: Path) -> None:
    """With noise_mode='none' G never sees its noise inputs, so their strengths get no gradient and stay 0."""
    state = train_generator(tiny_options(crops_npz, tmp_path / "run", noise_mode="none"))
    strengths = [p for n, p in state.G.named_parameters() if n.endswith("noise_strength")]
    assert strengths and all(float(p) == 0.0 for p in strengths)
    noisy = train_generator(tiny_options(crops_npz, tmp_path / "noisy"))
    assert any(float(p) != 0.0 for n, p in noisy.G.named_parameters() if n.endswith("noise_strength"))
    with pytest.raises(InputError, match="noise_mode"):
        train_generator(tiny_options(crops_npz, tmp_path / "bad", noise_mode="const"))


def test_identity_spread_hinges_on_the_margin() -> None:
    same = torch.zeros(4, 3, requires_grad=True)
    assert losses.identity_spread(same, 0.7).item() == pytest.approx(0.7)  # one person four times
    apart = torch.eye(4) * 5
    assert losses.identity_spread(apart, 0.7).item() == 0.0  # already different people: no push
    close = torch.tensor([[0.0], [0.1], [5.0]], requires_grad=True)
    loss = losses.identity_spread(close, 0.7)
    assert loss.item() == pytest.approx(0.6 / 3)  # only the pair 0.1 apart counts
    loss.backward()
    assert close.grad is not None and close.grad[0, 0] > 0 > close.grad[1, 0]  # descent moves them apart
    with pytest.raises(ValueError, match="at least 2"):
        losses.identity_spread(torch.zeros(1, 3), 0.7)


def test_identity_spread_trains_g_with_the_real_recognizer(crops_npz: Path, tmp_path: Path) -> None:
    """G steps with the term on log it; Adam steps on the term alone (fixed z) raise the samples' spread."""
    state = train_generator(tiny_options(crops_npz, tmp_path / "run", steps=2, identity_weight=1.0))
    lines = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert state.recognizer is not None and all(0.0 <= ln["identity_spread"] <= 0.7 for ln in lines)
    G, recognizer = state.G, state.recognizer
    G.requires_grad_(True)
    z = torch.randn(4, G.z_dim, generator=torch.Generator().manual_seed(3))
    optimizer = torch.optim.Adam(G.parameters(), lr=0.01)
    spreads = []
    for _ in range(4):
        loss = losses.identity_spread(recognizer(G(z, noise_mode="none")), 10.0)  # margin no pair reaches
        spreads.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert spreads[-1] < spreads[0]


def test_a_wider_discriminator_trains_beside_a_warm_started_g_and_resumes(
    crops_npz: Path, tmp_path: Path
) -> None:
    """d_channel_base / d_channel_max widen only D; G keeps the checkpoint's width and the run resumes."""
    source = train_generator(tiny_options(crops_npz, tmp_path / "source", steps=1))
    save_generator(source.G_ema, tmp_path / "init", name="init")
    options = tiny_options(
        crops_npz,
        tmp_path / "wide",
        steps=2,
        init_generator=str(tmp_path / "init"),
        d_channel_base=256,
        d_channel_max=32,
    )
    state = train_generator(options)
    assert state.D.config.channel_max == 32 and state.G.config == source.G.config
    assert sum(p.numel() for p in state.D.parameters()) > sum(p.numel() for p in source.D.parameters())
    resumed = train_generator(
        dataclasses.replace(read_options(tmp_path / "wide"), steps=3), RunControl(resume=True)
    )
    assert resumed.step == 3 and resumed.D.config.channel_base == 256


def test_ema_half_life_sets_how_closely_g_ema_follows_g(crops_npz: Path, tmp_path: Path) -> None:
    """A vanishing half-life copies G into G_ema; a very long one leaves G_ema at the warm-start weights."""
    source = train_generator(tiny_options(crops_npz, tmp_path / "source", steps=1))
    save_generator(source.G_ema, tmp_path / "init", name="init")
    start = {n: t.clone() for n, t in source.G_ema.named_parameters()}

    def run(name: str, ema_kimg: float) -> TrainState:
        return train_generator(
            tiny_options(
                crops_npz,
                tmp_path / name,
                steps=3,
                init_generator=str(tmp_path / "init"),
                ema_kimg=ema_kimg,
                ema_rampup=None,
            )
        )

    follows, lags = run("short", 1e-9), run("long", 1e6)
    assert all(
        torch.equal(t, dict(follows.G.named_parameters())[n]) for n, t in follows.G_ema.named_parameters()
    )
    moved = max(float((t - start[n]).abs().max()) for n, t in lags.G.named_parameters())
    lag = max(float((t - start[n]).abs().max()) for n, t in lags.G_ema.named_parameters())
    assert moved > 1e-3 and lag < moved * 1e-3
