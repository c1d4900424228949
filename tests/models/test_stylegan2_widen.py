"""Widening a generator: the wide G draws the narrow G's images exactly, and its new channels can learn."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ifadit.errors import InputError
from ifadit.models.stylegan2.networks import Generator, GeneratorConfig
from ifadit.models.stylegan2.widen import widen_generator

NARROW = GeneratorConfig(
    img_resolution=32, z_dim=16, w_dim=16, mapping_layers=2, channel_base=128, channel_max=16
)


@pytest.fixture()
def narrow() -> Generator:
    torch.manual_seed(0)
    G = Generator(NARROW)
    with torch.no_grad():  # trained-looking weights: non-zero biases and noise strengths
        for name, p in G.named_parameters():
            if name.endswith(("bias", "noise_strength")):
                p.normal_(0, 0.3)
    return G


@pytest.mark.parametrize(("base", "cap"), [(256, 16), (256, 64), (1024, 32)])
@pytest.mark.parametrize("noise_mode", ["none", "const"])
def test_the_widened_generator_draws_the_same_images(
    narrow: Generator, base: int, cap: int, noise_mode: str
) -> None:
    wide = widen_generator(narrow, dataclasses.replace(NARROW, channel_base=base, channel_max=cap)).eval()
    narrow.eval()
    assert sum(p.numel() for p in wide.parameters()) > sum(p.numel() for p in narrow.parameters())
    z = torch.randn(4, NARROW.z_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = narrow(z, truncation_psi=0.7, noise_mode=noise_mode)
        got = wide(z, truncation_psi=0.7, noise_mode=noise_mode)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_the_new_channels_get_gradients_from_the_first_step(narrow: Generator) -> None:
    """The zero weights from new channels into old ones learn: the new channels' activations are not zero."""
    wide = widen_generator(narrow, dataclasses.replace(NARROW, channel_base=256, channel_max=32))
    z = torch.randn(4, NARROW.z_dim, generator=torch.Generator().manual_seed(2))
    wide(z, noise_mode="none").square().mean().backward()
    for name in ("b16.conv1", "b32.torgb"):
        old_in = narrow.synthesis.get_submodule(name).weight.shape[1]
        grad = wide.synthesis.get_submodule(name).weight.grad
        assert grad is not None and grad[:3, old_in:].abs().sum() > 0


def test_new_channels_are_drawn_from_the_seed(narrow: Generator) -> None:
    config = dataclasses.replace(NARROW, channel_base=256, channel_max=32)
    a, b, c = (widen_generator(narrow, config, seed=s).synthesis.b4.const for s in (0, 0, 1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a[:16], narrow.synthesis.b4.const)


def test_only_a_widening_is_accepted(narrow: Generator) -> None:
    with pytest.raises(InputError, match="fewer channels at 8 px"):
        widen_generator(narrow, dataclasses.replace(NARROW, channel_base=64))
    with pytest.raises(InputError, match="more than its width"):
        widen_generator(narrow, dataclasses.replace(NARROW, channel_base=256, z_dim=32))
