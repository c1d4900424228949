"""ID²Face model parts: identity VAE, orthogonal identity mapping, harmonizer gates, DDIM, checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ifadit.errors import ModelError
from ifadit.models.id2face import (
    Id2FaceConfig,
    IdentityVAE,
    keyed_rotation,
    load_id2face,
    orthogonal_identity_mapping,
    save_id2face,
)
from ifadit.models.id2face.diffusion import (
    add_noise,
    cosine_alpha_bars,
    ddim_sample,
    ddim_timesteps,
    velocity,
)
from ifadit.models.id2face.networks import Harmonizer
from ifadit.models.model_folder import CONFIG_FILE, WEIGHTS_FILE
from tests.id2face_support import tiny_config, tiny_id2face
from tests.ifadit_support import RES, TinyRecognizer, astronaut_crops, to_img


def unit(n: int, dim: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)), dim=1)


def test_vae_round_trip_learns_the_codes_and_prior_draws_are_unit_codes() -> None:
    torch.manual_seed(0)
    vae = IdentityVAE(id_dim=16, latent=8, hidden=64)
    codes = unit(12, 16, seed=1)
    mu, logvar = vae.encode(codes)
    assert mu.shape == logvar.shape == (12, 8)
    before = F.cosine_similarity(vae.decode(mu), codes).mean()
    opt = torch.optim.Adam(vae.parameters(), lr=3e-3)
    for _ in range(300):
        rec, mu, logvar = vae(codes)
        kl = 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(1).mean()
        loss = (1 - F.cosine_similarity(rec, codes)).mean() + 1e-3 * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = F.cosine_similarity(vae.decode(vae.encode(codes)[0]), codes)
    assert before < 0.5 and after.min() > 0.9

    draws = vae.sample_prior(5, torch.Generator().manual_seed(3))
    assert draws.shape == (5, 16)
    assert torch.allclose(draws.norm(dim=1), torch.ones(5), atol=1e-5)
    assert torch.equal(draws, vae.sample_prior(5, torch.Generator().manual_seed(3)))
    assert not torch.equal(draws, vae.sample_prior(5, torch.Generator().manual_seed(4)))


def test_orthogonal_identity_mapping_has_zero_cosine_and_keeps_the_norm() -> None:
    source, new = unit(64, 128, seed=1), unit(64, 128, seed=2)
    mapped = orthogonal_identity_mapping(new, source)
    assert F.cosine_similarity(mapped, source).abs().max() < 1e-5
    assert torch.allclose(mapped.norm(dim=1), torch.ones(64), atol=1e-5)
    # it removes only the source direction: what was orthogonal already stays put
    assert F.cosine_similarity(mapped, new).min() > 0.9
    scaled = orthogonal_identity_mapping(3 * new, source)
    assert torch.allclose(scaled.norm(dim=1), torch.full((64,), 3.0), atol=1e-4)
    # a draw parallel (or anti-parallel) to the source still gets an orthogonal unit code
    parallel = orthogonal_identity_mapping(torch.cat([source[:2], -source[2:4]]), source[:4])
    assert F.cosine_similarity(parallel, source[:4]).abs().max() < 1e-5
    assert torch.allclose(parallel.norm(dim=1), torch.ones(4), atol=1e-5)


def test_keyed_rotation_is_orthogonal_and_seed_determined() -> None:
    rot = keyed_rotation(2**62 + 5, 32)
    assert torch.allclose(rot @ rot.T, torch.eye(32), atol=1e-5)
    assert torch.equal(rot, keyed_rotation(2**62 + 5, 32))
    assert (rot - keyed_rotation(6, 32)).abs().max() > 0.1


def test_harmonizer_gates_lie_in_0_1_and_mix_the_two_conditions() -> None:
    torch.manual_seed(0)
    harmonizer = Harmonizer(id_dim=16, attr_dim=8, emb_dim=32)
    with torch.no_grad():
        harmonizer.gate.weight.mul_(50)  # push gates towards saturation: still inside [0, 1]
    u, attr, t_emb = unit(10, 16, seed=1), torch.randn(10, 8), torch.randn(10, 32)
    cond, gate = harmonizer(u, attr, t_emb)
    assert cond.shape == gate.shape == (10, 32)
    assert gate.min() >= 0 and gate.max() <= 1 and (gate < 0.01).any() and (gate > 0.99).any()
    h_id, h_attr = harmonizer.id_proj(u), harmonizer.attr_proj(attr)
    assert torch.allclose(cond, gate * h_id + (1 - gate) * h_attr, atol=1e-6)


def test_ddim_with_the_true_velocity_recovers_the_image_and_noising_is_the_schedule() -> None:
    alpha_bars = cosine_alpha_bars(100)
    assert alpha_bars[0] > 0.999 and alpha_bars[-1] < 1e-3 and (alpha_bars.diff() < 0).all()
    assert ddim_timesteps(100, 5) == [99, 74, 50, 25, 0]
    x0 = torch.rand(2, 3, 8, 8) * 1.8 - 0.9
    noise = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(add_noise(x0, noise, alpha_bars[[0, 0]]), x0, atol=0.1)
    a = alpha_bars[[60, 60]]
    x_t, v = add_noise(x0, noise, a), velocity(x0, noise, a)
    root = a.sqrt()[:, None, None, None]
    assert torch.allclose(root * x_t - (1 - root**2).sqrt() * v, x0, atol=1e-5)  # x0 back from (x_t, v)

    def oracle(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = alpha_bars[t][:, None, None, None]
        eps = (x_t - a.sqrt() * x0) / (1 - a).sqrt()
        return a.sqrt() * eps - (1 - a).sqrt() * x0

    assert torch.allclose(ddim_sample(oracle, noise, alpha_bars, steps=7), x0, atol=1e-4)


def test_config_round_trips_and_rejects_what_cannot_be_built() -> None:
    config = tiny_config()
    assert Id2FaceConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="unknown fields"):
        Id2FaceConfig.from_dict({**config.to_dict(), "extra": 1})
    with pytest.raises(ValueError, match="halved"):
        Id2FaceConfig(resolution=20, channels=(8, 8, 8, 8))
    with pytest.raises(ValueError, match="multiples of 8"):
        Id2FaceConfig(channels=(12, 24))


def test_anonymize_is_seeded_per_face_and_its_identity_is_orthogonal(astronaut: np.ndarray) -> None:
    model = tiny_id2face()
    img = to_img(astronaut_crops(astronaut, 4))
    with torch.no_grad():
        out = model.anonymize(img, seed=11)
        assert out.shape == (4, 3, RES, RES)
        assert torch.equal(out, model.anonymize(img, seed=11))
        assert torch.allclose(out[2:3], model.anonymize(img[2:3], seed=11), atol=1e-5)  # batch-independent
        assert (out - model.anonymize(img, seed=12)).abs().mean() > 0.05
        u_src = model.identity_code(img)
        u_new = model.surrogate_identity(u_src, seed=11)
    assert F.cosine_similarity(u_new, u_src).abs().max() < 1e-5
    assert torch.allclose(u_new.norm(dim=1), torch.ones(4), atol=1e-5)


def test_float16_copy_loads_as_float32_rounded_weights(tmp_path: Path) -> None:
    model = tiny_id2face()
    first = save_id2face(model, tmp_path / "m32", card={"steps": 3})
    copied_card = json.loads((tmp_path / "m32" / "model_card.json").read_text())
    copy_id = save_id2face(model, tmp_path / "m16", card=copied_card, dtype=torch.float16)
    card = json.loads((tmp_path / "m16" / "model_card.json").read_text())
    assert copy_id != first and card["model_id"] == copy_id and card["steps"] == 3  # the copy's own id
    loaded, _, _ = load_id2face(tmp_path / "m16", recognizer=TinyRecognizer())
    theirs = loaded.state_dict()
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not name.startswith("recognizer."):
            assert theirs[name].dtype == torch.float32, name
            assert torch.equal(theirs[name], tensor.half().float()), name


def test_save_load_round_trip_and_a_corrupt_file_is_refused(tmp_path: Path) -> None:
    model = tiny_id2face()
    model.id_mean.copy_(torch.linspace(-1, 1, model.config.id_dim))
    mid = save_id2face(model, tmp_path / "m", name="tiny-id2face", card={"steps": 3})
    loaded, loaded_id, sha = load_id2face(tmp_path / "m", recognizer=TinyRecognizer())
    assert loaded_id == mid == f"tiny-id2face-{sha[:12]}"
    assert loaded.config == model.config
    theirs = loaded.state_dict()
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, theirs[name]), name
    assert json.loads((tmp_path / "m" / "model_card.json").read_text())["steps"] == 3

    weights = tmp_path / "m" / WEIGHTS_FILE
    corrupt = bytearray(weights.read_bytes())
    corrupt[-1] ^= 1
    weights.write_bytes(bytes(corrupt))
    with pytest.raises(ModelError, match="sha256"):
        load_id2face(tmp_path / "m", recognizer=TinyRecognizer())
    (tmp_path / "m" / CONFIG_FILE).write_text("{")
    with pytest.raises(ModelError, match="not valid JSON"):
        load_id2face(tmp_path / "m", recognizer=TinyRecognizer())
    with pytest.raises(ModelError, match="missing"):
        load_id2face(tmp_path / "nowhere")
