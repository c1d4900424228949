"""Keyed flow: exact inversion for every key, key sensitivity, deterministic HKDF conditions."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ifadit.models.ifadit.flow import FlowConfig, KeyedFlow, condition_from_key, haar_orthogonal

CONFIG = FlowConfig(dim=16, cond_dim=8, blocks=4, hidden=32)


def _trained_like(seed: int = 0) -> KeyedFlow:
    """A small flow whose zero-initialised last layers are perturbed, as training would."""
    torch.manual_seed(seed)
    flow = KeyedFlow(CONFIG)
    with torch.no_grad():
        for parameter in flow.trainable_parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    return flow


def _key(byte: int) -> bytes:
    return bytes([byte]) * 32


def test_round_trip_is_exact_in_fp32() -> None:
    flow = _trained_like()
    z = torch.randn(64, CONFIG.dim)
    c = torch.stack([condition_from_key(_key(i % 7), "m1", CONFIG.cond_dim) for i in range(64)])
    assert (flow.inverse(flow(z, c), c) - z).abs().max().item() <= 1e-5
    assert (flow(flow.inverse(z, c), c) - z).abs().max().item() <= 1e-5


def test_fresh_flow_is_invertible_and_key_independent() -> None:
    flow = KeyedFlow(CONFIG)
    z = torch.randn(8, CONFIG.dim)
    a, b = condition_from_key(_key(1), "m1", 8), condition_from_key(_key(2), "m1", 8)
    assert torch.allclose(flow(z, a), flow(z, b))
    assert (flow.inverse(flow(z, a), a) - z).abs().max().item() <= 1e-5


def test_wrong_condition_gives_a_different_code() -> None:
    flow = _trained_like()
    z = torch.randn(32, CONFIG.dim)
    right, wrong = condition_from_key(_key(1), "m1", 8), condition_from_key(_key(2), "m1", 8)
    surrogate = flow(z, right)
    assert (flow(z, wrong) - surrogate).norm(dim=1).min().item() > 1e-2
    assert (flow.inverse(surrogate, wrong) - z).norm(dim=1).min().item() > 1e-2


def test_condition_is_deterministic_gaussian_and_key_sensitive() -> None:
    a = condition_from_key(_key(1), "m1", 64)
    assert torch.equal(a, condition_from_key(_key(1), "m1", 64))
    assert a.dtype == torch.float32 and a.shape == (64,) and torch.isfinite(a).all()
    one_bit = bytearray(_key(1))
    one_bit[31] ^= 0x80
    for other in (condition_from_key(bytes(one_bit), "m1", 64), condition_from_key(_key(1), "m2", 64)):
        assert (a - other).norm().item() > 5.0  # independent N(0, I) draws sit ~11 apart in 64-D
    sample = torch.stack(
        [condition_from_key(bytes([i, j]) * 16, "m", 64) for i in range(16) for j in range(16)]
    )
    assert abs(sample.mean().item()) < 0.05 and abs(sample.std().item() - 1.0) < 0.05


def test_bad_inputs_are_refused() -> None:
    flow = KeyedFlow(CONFIG)
    with pytest.raises(ValueError, match="32 bytes"):
        condition_from_key(b"short", "m1", 8)
    with pytest.raises(ValueError, match=r"identity codes must be \[N, 16\]"):
        flow(torch.zeros(2, 15), torch.zeros(8))
    with pytest.raises(ValueError, match="conditions must be"):
        flow(torch.zeros(2, 16), torch.zeros(3, 8))


ROTATING = FlowConfig(dim=16, cond_dim=8, blocks=2, hidden=32, rotation_dim=4)


def _codes(n: int = 400, dim: int = 16) -> torch.Tensor:
    """Correlated Gaussian codes with a few dominant directions, like standardised identity codes."""
    torch.manual_seed(3)
    mixing = torch.randn(dim, dim) * torch.linspace(3.0, 0.2, dim)
    return torch.randn(n, dim) @ mixing.T + 0.5


def _rotating_flow() -> KeyedFlow:
    flow = KeyedFlow(ROTATING)
    assert flow.rotation is not None
    flow.rotation.fit(_codes())
    return flow


def _conditions(n: int, size: int = ROTATING.condition_size) -> torch.Tensor:
    return torch.stack([condition_from_key(_key(i % 5), "m1", size) for i in range(n)])


def test_keyed_rotation_round_trip_is_exact_and_stays_in_the_top_directions() -> None:
    flow = _rotating_flow()
    assert flow.rotation is not None and ROTATING.condition_size == 8 + 16
    z = _codes(64)
    c = _conditions(64)
    assert (flow.inverse(flow(z, c), c) - z).abs().max().item() <= 1e-5
    turned = flow.rotation.turn(z, flow._rotation(c, len(z)))
    span = flow.rotation.colour_top  # [dim, m]
    residual = (turned - z) - (turned - z) @ torch.linalg.pinv(span).T @ span.T
    assert residual.abs().max().item() <= 1e-4  # only the top-m span moved
    whitened = (z - flow.rotation.code_mean) @ flow.rotation.whiten_top.T
    whitened_turned = (turned - flow.rotation.code_mean) @ flow.rotation.whiten_top.T
    assert torch.allclose(whitened.norm(dim=1), whitened_turned.norm(dim=1), atol=1e-4)  # an isometry there


def test_keyed_rotation_separates_keys_without_training() -> None:
    """A fresh flow with a fitted rotation already gives each key its own surrogate, and a wrong key's
    inverse lands far from the original, where a fresh flow without rotation is key-independent."""
    flow = _rotating_flow()
    z = _codes(32)
    right, wrong = _conditions(1)[0], condition_from_key(_key(9), "m1", ROTATING.condition_size)
    surrogate = flow(z, right)
    assert (flow(z, wrong) - surrogate).norm(dim=1).median().item() > 1.0
    assert (flow.inverse(surrogate, wrong) - z).norm(dim=1).median().item() > 1.0
    assert torch.equal(flow(z, right), surrogate)  # deterministic


def test_haar_orthogonal_is_orthogonal_and_deterministic() -> None:
    gaussian = torch.randn(3, 5, 5)
    q = haar_orthogonal(gaussian)
    assert torch.allclose(q @ q.transpose(1, 2), torch.eye(5).expand(3, 5, 5), atol=1e-5)
    assert torch.equal(q, haar_orthogonal(gaussian.clone()))


def test_unfitted_rotation_is_the_identity_and_bad_sizes_are_refused() -> None:
    flow = KeyedFlow(FlowConfig(dim=16, cond_dim=8, blocks=0, hidden=32, rotation_dim=4))
    z = torch.randn(4, 16)
    assert torch.equal(flow(z, _conditions(4)), z)
    with pytest.raises(ValueError, match=r"conditions must be \[N, 24\]"):
        flow(z, torch.zeros(4, 8))
    with pytest.raises(ValueError, match="rotation_dim must be in 0..16"):
        FlowConfig(dim=16, rotation_dim=17)


def test_conditions_longer_than_one_hkdf_derivation_keep_the_first_block() -> None:
    """Values derived before conditions could pass one HKDF derivation (2,040 numbers) stay the same, so images
    anonymized then restore; a longer condition (rotation_dim 72: 64 + 72², three derivations) starts with the
    2,040-number one, continues with independent Gaussians and stays key-sensitive throughout."""
    key = bytes(range(32))
    pinned = condition_from_key(key, "ifadit-abc", 64)
    expected = [-0.9764889478683472, 0.017343122512102127, -2.1367435455322266, 1.7086604833602905]
    assert pinned[[0, 1, 2, 32]].tolist() == expected
    block = condition_from_key(key, "ifadit-abc", 2040)
    assert block[-2:].tolist() == [-0.4105706512928009, 0.8742061257362366]
    size = FlowConfig(dim=128, cond_dim=64, rotation_dim=72).condition_size
    long = condition_from_key(key, "ifadit-abc", size)
    assert long.shape == (size,) == (64 + 72 * 72,) and torch.equal(long[:2040], block)
    rest = long[2040:]
    assert abs(rest.mean().item()) < 0.05 and abs(rest.std().item() - 1.0) < 0.05
    assert abs(torch.corrcoef(torch.stack([rest[:2040], long[:2040]]))[0, 1].item()) < 0.1  # not a repeat
    other = condition_from_key(_key(2), "ifadit-abc", size)
    assert (long[4080:] - other[4080:]).norm() > 30  # independent N(0, I) draws sit ~49 apart in 1,208-D


def test_rotation_gain_scales_the_turned_coordinates_and_still_inverts() -> None:
    """With gain s the top-m whitened coordinates come out s times longer (turned), the inverse is exact, and
    a re-read error added to a surrogate comes back divided by s there."""
    flow = KeyedFlow(dataclasses.replace(ROTATING, blocks=0))
    assert flow.rotation is not None
    flow.rotation.fit(_codes(), gain=1.5)
    z, c = _codes(64), _conditions(64)
    surrogate = flow(z, c)
    assert (flow.inverse(surrogate, c) - z).abs().max().item() <= 1e-5
    rotation = flow.rotation

    def whitened(codes: torch.Tensor) -> torch.Tensor:
        return (codes - rotation.code_mean) @ rotation.whiten_top.T

    assert torch.allclose(whitened(surrogate).norm(dim=1), 1.5 * whitened(z).norm(dim=1), atol=1e-4)
    error = 0.1 * rotation.colour_top @ torch.randn(rotation.m)  # a re-read error inside the turned span
    restored = flow.inverse(surrogate + error, c)
    assert torch.allclose(
        whitened(restored - z + rotation.code_mean).norm(dim=1),
        whitened(error + rotation.code_mean).norm().expand(64) / 1.5,
        atol=1e-4,
    )
    with pytest.raises(ValueError, match="gain must be at least 1"):
        rotation.fit(_codes(), gain=0.9)


def test_rotation_saved_before_the_gain_loads_as_a_pure_rotation() -> None:
    flow = _rotating_flow()
    state = {k: v for k, v in flow.state_dict().items() if k != "rotation.gain"}
    fresh = KeyedFlow(ROTATING)
    fresh.load_state_dict(state)
    assert fresh.rotation is not None and fresh.rotation.gain.item() == 1.0
    z, c = _codes(8), _conditions(8)
    assert torch.equal(fresh(z, c), flow(z, c))
