"""Keyed flow: exact inversion for every key, key sensitivity, deterministic HKDF conditions."""

from __future__ import annotations

import pytest
import torch

from ifadit.models.flow import FlowConfig, KeyedFlow, condition_from_key

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
