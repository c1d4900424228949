"""Phase 2: key-aware loss terms on constructed cases, keys, views, one step lowers the loss, bit-exact resume."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from ifadit.models.ifadit.checkpoint import save_ifadit
from ifadit.models.ifadit.flow import flip_bit
from ifadit.models.ifadit.model import PLAUSIBLE_NORM, plausible_code
from ifadit.training import ifadit_losses as L
from ifadit.training.options import RunControl, read_phase2_options
from ifadit.training.phase2 import (
    Phase2Options,
    augment_view,
    conditions,
    far_key_pairs,
    phase2_losses,
    phase2_parameters,
    phase2_step,
    quantize,
    random_keys,
    train_phase2,
    wrong_key_readings,
)
from ifadit.training.runner import PhaseState
from tests.ifadit_support import RES, TinyRecognizer, astronaut_crops, crops_npz, tiny_model, to_img

THR, MARGIN = 0.6, 0.1


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray) -> tuple[Path, Path]:
    """(phase-1 model folder with identity statistics, 16 px crop cache)."""
    root = tmp_path_factory.mktemp("phase2")
    crops = astronaut_crops(astronaut, 8)
    model = tiny_model()
    with torch.no_grad():
        desc = model.descriptor(to_img(crops))
        model.set_identity_stats(desc.mean(0), desc.std(0))
    save_ifadit(model, root / "phase1", name="tiny")
    return root / "phase1", crops_npz(root, crops)


def tiny_options(setup: tuple[Path, Path], out: Path, **changes: object) -> Phase2Options:
    encoder, data = setup
    base = Phase2Options(
        encoder=str(encoder),
        data=str(data),
        out=str(out),
        batch=4,
        steps=4,
        log_every=1,
        sample_every=2,
        checkpoint_minutes=1e9,
        grid=3,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_separation_hinges_vanish_beyond_the_margin_and_bite_below() -> None:
    a = torch.zeros(2, 4)
    far = torch.tensor([[0.8, 0, 0, 0], [0, 0.9, 0, 0]])  # distances 0.8, 0.9 >= 0.7
    for loss in (L.anonymity_loss, L.diversity_loss, L.wrong_key_loss):
        assert loss(far, a, THR, MARGIN).item() == 0
        assert loss(a, a, THR, MARGIN).item() == pytest.approx(THR + MARGIN)  # identical: full hinge
        near = torch.tensor([[0.5, 0, 0, 0], [0.65, 0, 0, 0]])
        assert loss(near, a, THR, MARGIN).item() == pytest.approx((0.2 + 0.05) / 2)


def test_naturalness_is_zero_on_the_real_set_and_grows_with_drift() -> None:
    torch.manual_seed(0)
    real = torch.randn(64, 16)
    assert L.naturalness_loss(real, real).item() == pytest.approx(0, abs=1e-6)
    values = [L.naturalness_loss(torch.randn(64, 16) + shift, real).item() for shift in (0.0, 1.0, 3.0)]
    assert values[0] < values[1] < values[2]
    assert L.naturalness_loss(3 * torch.randn(64, 16), real).item() > values[0]  # too spread out


def test_key_spread_penalises_faces_whose_keys_collapse_onto_few_identities() -> None:
    """Per face, 8 keys' surrogates drawn like the real codes score low; the same faces sent to 1 or 2
    identities whatever the key score higher, although pooled over faces they still look real."""
    torch.manual_seed(0)
    reference = torch.randn(512, 16)
    spread = torch.randn(6, 8, 16)
    one = torch.randn(6, 1, 16).expand(6, 8, 16)
    two = torch.randn(6, 2, 16).repeat_interleave(4, dim=1)
    values = [L.key_spread_loss(s, reference).item() for s in (spread, two, one)]
    assert values[0] < values[1] < values[2]
    assert (
        L.naturalness_loss(one.reshape(-1, 16), reference).item() < values[2]
    )  # what naturalness alone sees


def test_far_key_pairs_counts_pairs_of_one_face_at_or_beyond_the_threshold() -> None:
    codes = torch.zeros(2, 3, 4)
    codes[0, 1, 0] = 0.7  # face 0: key 1 is 0.7 from keys 0 and 2; keys 0 and 2 coincide
    codes[1, :, 1] = torch.tensor([0.0, 1.0, 2.0])  # face 1: every pair >= 1 apart
    assert far_key_pairs(codes, 0.6) == pytest.approx((2 / 3 + 1) / 2)
    assert far_key_pairs(codes, 1.5) == pytest.approx((0 + 1 / 3) / 2)


def test_moments_pull_back_codes_at_any_distance() -> None:
    torch.manual_seed(0)
    assert L.moment_loss(torch.randn(20000, 16)).item() < 1e-3
    assert L.moment_loss(torch.full((4, 16), 2.0)).item() == pytest.approx(4 + 9)  # mean 2, second moment 4
    far = torch.full((4, 16), 50.0, requires_grad=True)
    L.moment_loss(far).backward()
    assert far.grad is not None and far.grad.abs().min() > 1  # where the MMD's kernels have gone flat


def test_recoverability_and_consistency_are_squared_code_errors() -> None:
    z = torch.randn(3, 16)
    assert L.recoverability_loss(z, z) == 0 and L.consistency_loss(z, z) == 0
    assert L.recoverability_loss(z + 0.5, z).item() == pytest.approx(0.25)
    assert L.consistency_loss(z, z - 1).item() == pytest.approx(1.0)


def test_fidelity_is_the_mean_descriptor_distance_of_re_read_and_code() -> None:
    code = torch.randn(4, 128)
    assert L.fidelity_loss(code, code) == 0
    shifted = code.clone()
    shifted[:, 0] += 0.3  # every row 0.3 away from its code
    assert L.fidelity_loss(shifted, code).item() == pytest.approx(0.3, abs=1e-6)


def test_runs_saved_before_fidelity_key_spread_and_clipping_resume_without_them(tmp_path: Path) -> None:
    (tmp_path / "options.json").write_text(json.dumps({"encoder": "e", "data": "d", "out": str(tmp_path)}))
    old = read_phase2_options(tmp_path)
    weights = old.loss_weights()
    assert weights["fidelity"] == 0.0 and weights["key_spread"] == 0.0 and weights["anonymity"] == 1.0
    assert old.clip_grad == 0.0
    new = dataclasses.asdict(tiny_options((tmp_path, tmp_path), tmp_path))
    (tmp_path / "options.json").write_text(json.dumps(new))
    assert read_phase2_options(tmp_path).loss_weights() == Phase2Options("", "", "").loss_weights()
    assert read_phase2_options(tmp_path).clip_grad == Phase2Options("", "", "").clip_grad > 0


@pytest.mark.parametrize("clip", [1e-6, 0.0])
def test_phase2_step_clips_the_gradient_norm_when_asked(astronaut: np.ndarray, clip: float) -> None:
    """With clipping, the gradients Adam sees have at most the given norm and the step logs the norm before
    clipping; with clip_grad 0 they are left alone."""
    model = tiny_model(trained_like=False)
    crops = astronaut_crops(astronaut, 4)
    with torch.no_grad():
        desc = model.descriptor(to_img(crops))
        model.set_identity_stats(desc.mean(0), desc.std(0))
    state = PhaseState(model, torch.optim.Adam(phase2_parameters(model), lr=1e-3))
    options = Phase2Options(encoder="", data="", out="", clip_grad=clip)
    torch.manual_seed(3)
    stats = phase2_step(state, torch.from_numpy(crops).permute(0, 3, 1, 2), options, model.standardise(desc))
    grads = [p.grad for p in phase2_parameters(model) if p.grad is not None]
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    if clip:
        assert stats["grad_norm"] > clip and total.item() <= clip * 1.01
    else:
        assert "grad_norm" not in stats and total.item() > 1e-6


def test_keys_one_bit_apart_give_unrelated_conditions() -> None:
    torch.manual_seed(0)
    [key] = random_keys(1)
    near = flip_bit(key, 77)
    assert len(key) == 32 and sum(bin(a ^ b).count("1") for a, b in zip(key, near, strict=True)) == 1
    c = conditions([key, near, key], 64)
    assert torch.equal(c[0], c[2]) and (c[0] - c[1]).norm() > 5  # ~ sqrt(2 * 64) for independent N(0, I)


def test_augmented_views_stay_in_range_and_are_identity_when_off() -> None:
    torch.manual_seed(0)
    x = torch.rand(4, 3, RES, RES) * 2 - 1
    assert torch.allclose(augment_view(x, 0, 0.0), x, atol=1e-6)
    view = augment_view(x, 2, 0.1)
    assert view.shape == x.shape and view.min() >= -1 and view.max() <= 1 and not torch.equal(view, x)


def test_surrogate_distances_ignore_the_re_read_augmentation(
    astronaut: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the second key equal to the first, the two surrogates are one image: the key distance that the
    diversity term sees is 0 although the re-read (published) copy is shifted and jittered."""
    model = tiny_model(trained_like=False)
    x = to_img(astronaut_crops(astronaut, 4))
    with torch.no_grad():
        desc = model.descriptor(x)
        model.set_identity_stats(desc.mean(0), desc.std(0))
    same = random_keys(4)
    monkeypatch.setattr("ifadit.training.phase2.random_keys", lambda count: (same * count)[:count])
    torch.manual_seed(5)
    options = Phase2Options(encoder="", data="", out="", shift=2, jitter=0.1)
    _, stats = phase2_losses(model.eval(), x, options, model.standardise(desc))
    assert stats["key_dist"] == 0 and stats["key_code_dist"] == 0
    assert stats["fidelity"] > 0  # the re-read copy is augmented


def test_one_step_lowers_the_phase2_loss_on_a_fixed_batch(astronaut: np.ndarray) -> None:
    """The weighted phase-2 loss on the same 4 crops with the same keys and views (torch seeded before each
    evaluation), before vs after one Adam step of the flow and the correction."""
    model = tiny_model(trained_like=False)
    x = to_img(astronaut_crops(astronaut, 4))
    with torch.no_grad():
        desc = model.descriptor(x)
        model.set_identity_stats(desc.mean(0), desc.std(0))
    options = Phase2Options(encoder="", data="", out="")
    state = PhaseState(model.train(), torch.optim.Adam(phase2_parameters(model), lr=1e-3))
    reference = model.standardise(desc)
    torch.manual_seed(5)
    before, stats = phase2_losses(model, x, options, reference)
    assert set(stats) >= {
        "moments",
        "anonymity",
        "diversity",
        "naturalness",
        "key_spread",
        "fidelity",
        "recoverability",
        "wrong_key",
        "consistency",
    }
    state.optimizer.zero_grad()
    before.backward()
    state.optimizer.step()
    assert all(p.grad is None for p in model.mapper.parameters())  # only F and the correction learn
    torch.manual_seed(5)
    with torch.no_grad():
        after, _ = phase2_losses(model, x, options, reference)
    assert after.item() < before.item()


def test_run_grid_has_original_three_keys_restored_and_wrong_key(
    setup: tuple[Path, Path], tmp_path: Path
) -> None:
    options = tiny_options(setup, tmp_path / "run")
    train_phase2(options, recognizer=TinyRecognizer())
    out = Path(options.out)
    assert np.asarray(Image.open(out / "samples-latest.png")).shape == (3 * RES, 6 * RES, 3)
    lines = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert [ln["step"] for ln in lines] == [1, 2, 3, 4] and all(np.isfinite(ln["loss"]) for ln in lines)
    assert read_phase2_options(out) == options
    before = load_file(str(Path(options.encoder) / "model.safetensors"))
    after = load_file(str(out / "model" / "model.safetensors"))
    assert torch.equal(before["mapper.net.0.weight"], after["mapper.net.0.weight"])  # frozen in phase 2
    flow = [k for k in before if k.startswith("flow.") and "perm" not in k]
    assert any(not torch.equal(before[k], after[k]) for k in flow)


def test_resume_is_bit_exact(setup: tuple[Path, Path], tmp_path: Path) -> None:
    """4 steps in one go and 2 + resume + 2 give identical weights."""
    train_phase2(tiny_options(setup, tmp_path / "a"), recognizer=TinyRecognizer())
    train_phase2(tiny_options(setup, tmp_path / "b", steps=2), recognizer=TinyRecognizer())
    train_phase2(tiny_options(setup, tmp_path / "b"), RunControl(resume=True), recognizer=TinyRecognizer())
    a = load_file(str(tmp_path / "a" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_quantize_rounds_to_uint8_levels_and_passes_gradients() -> None:
    x = torch.tensor([-1.2, -0.5, 0.0013, 0.9999], requires_grad=True)
    q = quantize(x)
    assert torch.allclose((q + 1) * 127.5, ((q + 1) * 127.5).round(), atol=1e-4) and q.min() >= -1
    q.sum().backward()
    assert x.grad is not None and torch.equal(x.grad, torch.ones(4))


def test_wrong_key_readings_see_the_projected_code_restore_renders(astronaut: np.ndarray) -> None:
    """A wrong key can throw F^-1's output far from every real code; restore projects it back before rendering,
    so the wrong-key hinge must read the projected code (a far code would meet the hinge trivially)."""
    torch.manual_seed(0)
    model = tiny_model()
    published = to_img(astronaut_crops(astronaut, 2))
    far = 1e4 * torch.randn(2, model.config.flow.dim)
    code, rendered = wrong_key_readings(model, far, published)
    limit = PLAUSIBLE_NORM * model.config.flow.dim**0.5
    assert torch.all(model.standardise(code).norm(dim=1) <= limit * (1 + 1e-5))
    with torch.no_grad():
        shown = model.render(plausible_code(far), model.encoder(published))
        assert torch.allclose(rendered, model.descriptor(shown))
