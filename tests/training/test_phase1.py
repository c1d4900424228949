"""Phase 1: loss terms on constructed cases, one step lowers the loss, run files, bit-exact resume."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from ifadit.errors import InputError
from ifadit.models.ifadit.checkpoint import load_ifadit
from ifadit.models.stylegan2.checkpoint import save_generator
from ifadit.models.stylegan2.networks import Generator
from ifadit.training import ifadit_losses as L
from ifadit.training.options import RunControl, read_phase1_options
from ifadit.training.phase1 import (
    Phase1Options,
    build_model,
    phase1_losses,
    train_phase1,
)
from ifadit.training.runner import PhaseState
from ifadit.training.taps import FeatureTap
from tests.ifadit_support import (
    GENERATOR,
    ID_DIM,
    RES,
    STANDIN,
    TinyRecognizer,
    astronaut_crops,
    crops_npz,
    save_tiny_generator,
    to_img,
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray) -> tuple[Path, Path]:
    """(generator folder, 16 px crop cache)."""
    root = tmp_path_factory.mktemp("phase1")
    return save_tiny_generator(root / "gen"), crops_npz(root, astronaut_crops(astronaut, 8))


def tiny_options(setup: tuple[Path, Path], out: Path, **changes: object) -> Phase1Options:
    generator, data = setup
    base = Phase1Options(
        generator=str(generator),
        data=str(data),
        out=str(out),
        batch=4,
        steps=4,
        recognizer=STANDIN,
        id_dim=ID_DIM,
        attr_dim=8,
        enc_channels=8,
        mapper_hidden=32,
        mapper_layers=2,
        cond_dim=8,
        flow_blocks=2,
        flow_hidden=16,
        correction_hidden=16,
        feature_layers=("body.1", "body.3"),
        stats_samples=8,
        log_every=1,
        sample_every=2,
        checkpoint_minutes=1e9,
        grid=3,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_pixel_perceptual_and_identity_terms_on_constructed_cases() -> None:
    torch.manual_seed(0)
    img = torch.rand(2, 3, 8, 8) * 2 - 1
    assert L.pixel_loss(img, img) == 0 and L.pixel_loss(img, img + 0.5).item() == pytest.approx(0.5)
    feats = [torch.randn(2, 4, 5, 5), torch.randn(2, 8, 3, 3)]
    assert L.perceptual_loss(feats, feats).item() == pytest.approx(0, abs=1e-6)
    assert L.perceptual_loss(feats, [2 * f for f in feats]).item() == pytest.approx(0, abs=1e-6)  # scale-free
    assert L.perceptual_loss(feats, [-f for f in feats]).item() == pytest.approx(4.0, rel=1e-4)  # opposite
    d = torch.randn(3, 16)
    assert L.identity_loss(d, 3 * d).item() == pytest.approx(0, abs=1e-6)
    assert L.identity_loss(d, -d).item() == pytest.approx(2.0, rel=1e-5)


def test_coarse_term_ignores_fine_detail_but_not_layout() -> None:
    flat = torch.zeros(1, 3, 16, 16)
    checker = (
        ((torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2 * 2 - 1).float().expand(1, 3, 16, 16)
    )
    assert L.coarse_loss(0.3 * checker, flat).item() == pytest.approx(0, abs=1e-6)  # 1 px detail averages out
    brighter_left = flat.clone()
    brighter_left[..., :8] = 0.4
    assert L.coarse_loss(brighter_left, flat).item() == pytest.approx(0.2, rel=1e-5)


def test_cycle_and_offset_terms() -> None:
    z = torch.randn(4, 8, requires_grad=True)
    assert L.attribute_cycle_loss(z, z) == 0
    loss = L.attribute_cycle_loss(z + 1, z)
    assert loss.item() == pytest.approx(1.0)
    loss.backward()
    assert z.grad is not None and torch.allclose(z.grad, torch.full_like(z, 2 / 32))  # target side detached
    assert L.offset_loss(torch.full((2, 3, 4), 0.5)).item() == pytest.approx(0.25)


def test_one_step_lowers_the_phase1_loss_on_a_fixed_batch(
    setup: tuple[Path, Path], tmp_path: Path, astronaut: np.ndarray
) -> None:
    """The weighted phase-1 loss on the same 4 crops (no mirroring), before vs after one Adam step."""
    options = tiny_options(setup, tmp_path, lr=1e-3, mirror=False)
    model, _ = build_model(options, TinyRecognizer())
    x = to_img(astronaut_crops(astronaut, 4))
    with torch.no_grad():
        desc = model.descriptor(x)
        model.set_identity_stats(desc.mean(0), desc.std(0))
    tap = FeatureTap(model.recognizer, options.feature_layers)
    learning = [*model.encoder.parameters(), *model.mapper.parameters()]
    state = PhaseState(model, torch.optim.Adam(learning, lr=options.lr))
    before, stats = phase1_losses(model, tap, x, options)
    assert set(stats) >= {
        "pixel",
        "perceptual",
        "identity",
        "swap_identity",
        "coarse",
        "cycle",
        "offset",
        "leak",
    }
    state.optimizer.zero_grad()
    before.backward()
    state.optimizer.step()
    assert all(p.grad is None for p in model.generator.parameters())  # G stays frozen
    with torch.no_grad():
        after, _ = phase1_losses(model, tap, x, options)
    assert after.item() < before.item()


def test_leak_term_weighs_only_swaps_within_threshold_plus_margin_of_their_source(
    setup: tuple[Path, Path], tmp_path: Path, astronaut: np.ndarray
) -> None:
    """With every other weight zero, the loss is w_leak * mean(relu(threshold + margin - ||d(swap) - d(x)||)):
    zero when the margin is far below the distances the batch shows, positive and differentiable through the
    learning parts when it is above them; runs saved before the term existed read back without it."""
    x = to_img(astronaut_crops(astronaut, 4))
    off = {f"w_{term}": 0.0 for term in tiny_options(setup, tmp_path).loss_weights()}
    options = tiny_options(setup, tmp_path, mirror=False, **{**off, "w_leak": 2.0, "threshold": 0.0})
    model, _ = build_model(options, TinyRecognizer())
    tap = FeatureTap(model.recognizer, options.feature_layers)
    _, stats = phase1_losses(model, tap, x, dataclasses.replace(options, margin=0.0))
    assert stats["leak"] == 0 and stats["loss"] == 0 and stats["leak_dist"] > 0
    far = stats["leak_dist"] * 10
    loss, stats = phase1_losses(model, tap, x, dataclasses.replace(options, margin=far))
    assert stats["loss"] == pytest.approx(2 * (far - stats["leak_dist"]), rel=1e-5)
    loss.backward()
    learning = [*model.encoder.parameters(), *model.mapper.parameters()]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in learning)
    saved = tiny_options(setup, tmp_path)
    fields = {k: v for k, v in dataclasses.asdict(saved).items() if k != "w_leak"}
    (tmp_path / "options.json").write_text(json.dumps(fields))
    assert read_phase1_options(tmp_path).w_leak == 0.0


def test_run_writes_metrics_samples_and_a_loadable_model(setup: tuple[Path, Path], tmp_path: Path) -> None:
    options = tiny_options(setup, tmp_path / "run")
    state = train_phase1(options, recognizer=TinyRecognizer())
    out = Path(options.out)
    lines = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert [ln["step"] for ln in lines] == [1, 2, 3, 4] and all(np.isfinite(ln["loss"]) for ln in lines)
    grid = np.asarray(Image.open(out / "samples-latest.png"))
    assert grid.shape == (3 * RES, 4 * RES, 3)
    model, _, _ = load_ifadit(out / "model", recognizer=TinyRecognizer())
    assert torch.equal(model.id_std, state.model.id_std) and not torch.equal(model.id_std, torch.ones(ID_DIM))
    assert read_phase1_options(out) == options
    with pytest.raises(InputError, match="already holds a run"):
        train_phase1(options, recognizer=TinyRecognizer())


def test_resume_is_bit_exact(setup: tuple[Path, Path], tmp_path: Path) -> None:
    """4 steps in one go and 2 + resume + 2 give identical weights."""
    straight = train_phase1(tiny_options(setup, tmp_path / "a"), recognizer=TinyRecognizer())
    train_phase1(tiny_options(setup, tmp_path / "b", steps=2), recognizer=TinyRecognizer())
    resumed = train_phase1(
        tiny_options(setup, tmp_path / "b"), RunControl(resume=True), recognizer=TinyRecognizer()
    )
    assert resumed.step == straight.step == 4
    a = load_file(str(tmp_path / "a" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(ln)["step"] for ln in lines] == [1, 2, 3, 4]


def test_interrupt_writes_a_checkpoint_to_resume_from(setup: tuple[Path, Path], tmp_path: Path) -> None:
    """Ctrl-C (or SIGTERM through the CLI) during step 3 leaves a checkpoint at step 2 (and its model/)."""

    def stop(step: int, stats: dict[str, float]) -> None:
        if step == 2:
            raise KeyboardInterrupt

    options = tiny_options(setup, tmp_path / "run", steps=10)
    with pytest.raises(KeyboardInterrupt):
        train_phase1(options, RunControl(on_step=stop), recognizer=TinyRecognizer())
    assert json.loads((tmp_path / "run" / "checkpoints" / "latest.json").read_text())["step"] == 2
    resumed = train_phase1(
        dataclasses.replace(options, steps=3), RunControl(resume=True), recognizer=TinyRecognizer()
    )
    assert resumed.step == 3


def test_init_continues_from_a_model_folder(setup: tuple[Path, Path], tmp_path: Path) -> None:
    """A run started with `init` begins at that model: with a zero learning rate its weights and identity
    statistics come out unchanged (nothing re-estimated), and the architecture is the initial model's."""
    first = tiny_options(setup, tmp_path / "first")
    train_phase1(first, recognizer=TinyRecognizer())
    init = tmp_path / "first" / "model"
    options = tiny_options(setup, tmp_path / "second", init=str(init), lr=0.0, steps=2, stats_samples=1)
    train_phase1(options, recognizer=TinyRecognizer())
    a = load_file(str(init / "model.safetensors"))
    b = load_file(str(tmp_path / "second" / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert read_phase1_options(tmp_path / "second").init == str(init)


def test_init_onto_another_generator_carries_the_parts_and_refuses_another_w_plus(
    setup: tuple[Path, Path], tmp_path: Path
) -> None:
    """`swap_generator`: the initial model's encoder, mapper and statistics continue around the other
    generator (zero learning rate: unchanged), which the saved model renders with; a generator whose W+ the
    mapper cannot write is refused with the folder named."""
    train_phase1(tiny_options(setup, tmp_path / "first"), recognizer=TinyRecognizer())
    init = tmp_path / "first" / "model"
    other = save_tiny_generator(tmp_path / "other", seed=11)
    options = tiny_options(
        setup, tmp_path / "second", init=str(init), swap_generator=str(other), lr=0.0, steps=1
    )
    train_phase1(options, recognizer=TinyRecognizer())
    a = load_file(str(init / "model.safetensors"))
    b = load_file(str(tmp_path / "second" / "model" / "model.safetensors"))
    g = load_file(str(other / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a if not k.startswith("generator."))
    assert all(torch.equal(b[f"generator.{k}"], v) for k, v in g.items())
    assert any(not torch.equal(a[f"generator.{k}"], v) for k, v in g.items())

    wider_w = dataclasses.replace(GENERATOR, w_dim=8)
    torch.manual_seed(0)
    save_generator(Generator(wider_w), tmp_path / "w8", name="w8")
    refused = tiny_options(setup, tmp_path / "third", init=str(init), swap_generator=str(tmp_path / "w8"))
    with pytest.raises(
        InputError, match=r"w8: the generator draws \d+ x 8 W\+ at 16 px; this model's mapper"
    ):
        train_phase1(refused, recognizer=TinyRecognizer())
