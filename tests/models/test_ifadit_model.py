"""IfaditModel: shapes, determinism, exact flow inversion inside the model, key sensitivity, save/load."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from ifadit.errors import ModelError
from ifadit.models.ifadit.checkpoint import load_ifadit, save_ifadit
from ifadit.models.ifadit.flow import condition_from_key
from ifadit.models.ifadit.model import (
    PLAUSIBLE_NORM,
    IfaditConfig,
    IfaditModel,
    plausible_code,
    refine_reading,
    uint8_levels,
)
from ifadit.models.precision import float16_except, precision_label, round_to_precision, stored_dtypes
from tests.ifadit_support import ID_DIM, RES, TinyRecognizer, astronaut_crops, tiny_model, to_img


@pytest.fixture(scope="module")
def faces(astronaut: np.ndarray) -> torch.Tensor:
    return to_img(astronaut_crops(astronaut, 4))


def _c(byte: int, dim: int = 8) -> torch.Tensor:
    return condition_from_key(bytes([byte]) * 32, "tiny-model", dim)


def test_shapes_of_every_stage(faces: torch.Tensor) -> None:
    model = tiny_model()
    z_id, z_attr = model.encode(faces)
    assert z_id.shape == (4, ID_DIM) and z_attr.shape == (4, 8)
    assert model.mapped(z_id, z_attr).shape == (4, model.generator.num_ws, 16)
    for img in (model.render(z_id, z_attr), model.anonymize(faces, _c(1)), model.restore(faces, _c(1))):
        assert img.shape == (4, 3, RES, RES) and torch.isfinite(img).all()


def test_fresh_mapper_renders_the_average_face_for_every_input(faces: torch.Tensor) -> None:
    model = tiny_model(trained_like=False)
    out = model.anonymize(faces, _c(1))
    assert torch.equal(out[0], out[1]) and torch.equal(out[0], out[3])


def test_same_face_and_key_give_identical_bytes_and_keys_differ(faces: torch.Tensor) -> None:
    model = tiny_model()
    with torch.no_grad():
        a, b = model.anonymize(faces, _c(1)), model.anonymize(faces, _c(1))
        other = model.anonymize(faces, _c(2))
    assert a.numpy().tobytes() == b.numpy().tobytes()
    assert (a - other).abs().mean() > 1e-3


def test_flow_inverts_surrogate_codes_exactly_and_a_wrong_key_does_not(faces: torch.Tensor) -> None:
    model = tiny_model()
    with torch.no_grad():
        desc = model.descriptor(faces)
        model.set_identity_stats(desc.mean(0), desc.std(0))
        z_id, _ = model.encode(faces)
        c = torch.stack([_c(i) for i in range(4)])
        z_sur = model.surrogate(z_id, c)
        assert (model.flow.inverse(z_sur, c) - z_id).abs().max() <= 1e-5
        wrong = model.flow.inverse(z_sur, torch.stack([_c(i + 10) for i in range(4)]))
    assert (z_sur - z_id).norm(dim=1).min() > 0.5
    assert (wrong - z_id).norm(dim=1).min() > 1e-2  # > 1000x the round-trip error (an untrained flow)


def test_restore_with_wrong_key_is_a_different_face_not_an_error(faces: torch.Tensor) -> None:
    model = tiny_model()
    with torch.no_grad():
        anon = model.anonymize(faces, _c(1))
        right, wrong = model.restore(anon, _c(1)), model.restore(anon, _c(2))
    assert torch.isfinite(wrong).all() and (right - wrong).abs().mean() > 1e-3


def test_identity_codes_are_standardised_with_the_stored_statistics(faces: torch.Tensor) -> None:
    model = tiny_model()
    with torch.no_grad():
        desc = model.descriptor(faces)
        model.set_identity_stats(desc.mean(0), desc.std(0))
        z_id, _ = model.encode(faces)
    assert torch.allclose(z_id.mean(0), torch.zeros(ID_DIM), atol=1e-5)
    assert torch.allclose(z_id.std(0), torch.ones(ID_DIM), atol=1e-4)
    assert torch.allclose(model.destandardise(z_id), desc, atol=1e-5)


def test_train_mode_keeps_generator_and_recognizer_frozen() -> None:
    model = tiny_model().train()
    assert not model.generator.training and not model.recognizer.training
    assert not any(p.requires_grad for p in model.generator.parameters())
    assert model.encoder.training


def test_config_round_trips_through_json() -> None:
    config = tiny_model().config
    assert IfaditConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_save_load_gives_identical_outputs_and_a_sha256_model_id(tmp_path: Path, faces: torch.Tensor) -> None:
    model = tiny_model()
    mid = save_ifadit(model, tmp_path / "m", name="tiny")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert mid == f"tiny-{config['sha256'][:12]}" and config["recognizer_sha256"] is None
    assert not any(k.startswith("recognizer.") for k in load_file(str(tmp_path / "m" / "model.safetensors")))
    loaded, loaded_id, digest = load_ifadit(tmp_path / "m", recognizer=TinyRecognizer())
    assert loaded_id == mid and digest == config["sha256"]
    with torch.no_grad():
        assert torch.equal(loaded.anonymize(faces, _c(3)), model.anonymize(faces, _c(3)))
    with pytest.raises(ModelError, match="does not match the expected"):
        load_ifadit(tmp_path / "m", recognizer=TinyRecognizer(), expected_sha256="0" * 64)


def test_mixed_precision_copy_keeps_the_flow_exact_and_rounds_the_rest(tmp_path: Path) -> None:
    """A copy stored float16 except `flow.` loads the flow's float32 values bit for bit, the other modules as
    their float16 roundings; `stored_dtypes` reads the per-tensor precision back so a re-save is identical."""
    model = tiny_model()
    names = [name for name in model.state_dict() if not name.startswith("recognizer.")]
    dtypes = {name: torch.float32 if name.startswith("flow.") else torch.float16 for name in names}
    assert {k: v for k, v in float16_except(model, ["flow."]).items() if k in dtypes} == dtypes
    with pytest.raises(ValueError, match="no tensor of the model starts with 'flw.'"):
        float16_except(model, ["flw."])
    mid = save_ifadit(model, tmp_path / "m", name="tiny", dtype=dtypes)
    weights = tmp_path / "m" / "model.safetensors"
    assert stored_dtypes(weights) == dtypes
    assert precision_label(stored_dtypes(weights)) == "float16 + float32 (float32: flow)"
    loaded, _, _ = load_ifadit(tmp_path / "m", recognizer=TinyRecognizer())
    state, original = loaded.state_dict(), model.state_dict()
    for name in names:
        assert state[name].dtype == torch.float32
        assert torch.equal(state[name], original[name].to(dtypes[name]).float()), name
    assert save_ifadit(loaded, tmp_path / "again", name="tiny", dtype=stored_dtypes(weights)) == mid


def test_load_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"config\.json: missing"):
        load_ifadit(tmp_path)
    save_ifadit(tiny_model(), tmp_path / "m")
    with pytest.raises(ModelError, match="tiny-standin.*pass the recognizer"):
        load_ifadit(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").unlink()
    with pytest.raises(ModelError, match=r"model\.safetensors: missing"):
        load_ifadit(tmp_path / "m", recognizer=TinyRecognizer())


def test_production_path_loads_the_torch_dlib_recognizer(tmp_path: Path, faces: torch.Tensor) -> None:
    """A model saved with recognizer 'torch-dlib' loads dlib's ResNet by itself and records its .dat sha256."""
    from ifadit.models.dlib_resnet import load_dlib_resnet

    model = tiny_model(recognizer=load_dlib_resnet())
    save_ifadit(model, tmp_path / "m")
    loaded, _, _ = load_ifadit(tmp_path / "m")
    assert type(loaded.recognizer).__name__ == "DlibResNet"
    assert len(json.loads((tmp_path / "m" / "config.json").read_text())["recognizer_sha256"]) == 64


def test_plausible_code_keeps_real_codes_and_pulls_far_ones_onto_the_sphere() -> None:
    torch.manual_seed(0)
    real = torch.randn(64, 128)  # standardised codes of real faces: norms near sqrt(128) = 11.3
    assert torch.equal(plausible_code(real), real)
    far = torch.randn(8, 128) * torch.tensor([1e1, 1e2, 1e3, 1e4, 2, 3, 5, 7])[:, None]
    kept = plausible_code(far)
    assert torch.allclose(kept.norm(dim=1), torch.full((8,), PLAUSIBLE_NORM * 128**0.5))
    assert torch.allclose(torch.nn.functional.cosine_similarity(kept, far), torch.ones(8))  # direction kept


def test_round_to_precision_gives_the_values_a_saved_copy_loads(tmp_path: Path) -> None:
    """Rounding in place to a per-tensor precision yields exactly what the copy saved at that precision loads,
    and leaves the (never stored) recognizer alone."""
    model = tiny_model()
    dtypes = float16_except(model, ["flow."])
    recognizer_before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("recognizer.")}
    save_ifadit(model, tmp_path / "m", name="tiny", dtype=dtypes)
    round_to_precision(model, dtypes)
    loaded, _, _ = load_ifadit(tmp_path / "m", recognizer=TinyRecognizer())
    state, rounded = loaded.state_dict(), model.state_dict()
    assert any(
        not torch.equal(rounded[k], v)
        for k, v in tiny_model().state_dict().items()
        if k.startswith("mapper.")
    )
    for name, value in state.items():
        if not name.startswith("recognizer."):
            assert torch.equal(value, rounded[name]), name
    for name, value in recognizer_before.items():
        assert torch.equal(rounded[name], value), name


def test_refine_reading_solves_a_contracting_read_back() -> None:
    """On a linear read-back A e + b with A near the identity, each step shrinks the distance to the code whose
    read-back is the observation, geometrically; zero steps return the observation itself."""
    generator = torch.Generator().manual_seed(0)
    a = torch.eye(6, dtype=torch.float64) * 0.8 + 0.05 * torch.randn(
        6, 6, generator=generator, dtype=torch.float64
    )
    b = torch.randn(6, generator=generator, dtype=torch.float64)
    truth = torch.randn(3, 6, generator=generator, dtype=torch.float64)
    observed = truth @ a.T + b

    def read_back(code: torch.Tensor) -> torch.Tensor:
        return code @ a.T + b

    assert torch.equal(refine_reading(observed, read_back, 0), observed)
    errors = [float((refine_reading(observed, read_back, k) - truth).norm()) for k in range(6)]
    assert all(later < 0.5 * earlier for earlier, later in zip(errors, errors[1:], strict=False))


def test_reread_refinements_run_the_model_render_and_read() -> None:
    """`reread_refinements` = 1 moves the corrected re-read by the gap between it and the corrected re-read of
    its own render, published as the crops were (rounded to uint8, or by a given step that sees the crops);
    0 is one corrected read; old configs without the field load with 0."""
    base = tiny_model()
    faces = to_img(np.full((2, RES, RES, 3), 90, np.uint8))
    config = dataclasses.replace(base.config, reread_refinements=1)
    refined = IfaditModel(config, base.generator, base.recognizer)
    refined.load_state_dict(base.state_dict())
    refined.eval()
    with torch.no_grad():
        z_read, z_attr = base.encode(faces)
        once = base.correction(z_read)
        again = base.correction(base.standardise(base.descriptor(uint8_levels(base.render(once, z_attr)))))
        assert torch.equal(base.reread(faces)[0], once)
        assert torch.allclose(refined.reread(faces)[0], 2 * once - again, atol=1e-6)
        assert not torch.allclose(refined.reread(faces)[0], once, atol=1e-4)

    def shifted(renders: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:  # a publishing step
        return uint8_levels(0.5 * renders + 0.5 * observed)

    with torch.no_grad():
        published = shifted(base.render(once, z_attr), faces)
        again = base.correction(base.standardise(base.descriptor(published)))
        assert torch.allclose(refined.reread(faces, shifted)[0], 2 * once - again, atol=1e-6)
    old = {k: v for k, v in base.config.to_dict().items() if k != "reread_refinements"}
    assert IfaditConfig.from_dict(old).reread_refinements == 0
    with pytest.raises(ValueError, match="reread_refinements must be 0 or more"):
        dataclasses.replace(base.config, reread_refinements=-1)
