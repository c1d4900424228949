"""StyleGAN2 networks and ops: shapes, equivalent execution paths, noise, truncation, style mixing, names."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ifadit.models.stylegan2 import ops
from ifadit.models.stylegan2.networks import (
    Discriminator,
    DiscriminatorConfig,
    Generator,
    GeneratorConfig,
    style_mix,
)

TINY = dict(z_dim=16, w_dim=16, mapping_layers=2, channel_base=256, channel_max=32)


def tiny_generator(res: int, seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    G = Generator(GeneratorConfig(img_resolution=res, **TINY)).eval()
    for name, p in G.named_parameters():  # non-zero noise strengths, so noise modes are observable
        if name.endswith("noise_strength"):
            p.data.fill_(0.5)
    G.mapping.w_avg.normal_()
    return G


@pytest.mark.parametrize("res", [8, 16, 32])
def test_generator_and_discriminator_shapes(res: int) -> None:
    G = tiny_generator(res)
    D = Discriminator(DiscriminatorConfig(img_resolution=res, channel_base=256, channel_max=32))
    z = torch.randn(4, 16)
    img = G(z)
    assert img.shape == (4, 3, res, res)
    assert G.num_ws == 2 * (res.bit_length() - 1) - 2  # two convs per block but b4 (one) + the last torgb
    assert G.mapping(z).shape == (4, G.num_ws, 16)
    assert D(img).shape == (4, 1)


def test_fused_and_unfused_modulated_conv_agree() -> None:
    G = tiny_generator(16)
    z = torch.randn(3, 16)
    a = G(z, noise_mode="const", fused_modconv=True)
    b = G(z, noise_mode="const", fused_modconv=False)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_noise_modes() -> None:
    G = tiny_generator(16)
    z = torch.randn(2, 16)
    const1, const2 = G(z, noise_mode="const"), G(z, noise_mode="const")
    assert torch.equal(const1, const2)
    assert not torch.allclose(G(z, noise_mode="none"), const1)
    assert not torch.allclose(G(z, noise_mode="random"), G(z, noise_mode="random"))
    with pytest.raises(ValueError, match="noise_mode"):
        G(z, noise_mode="loud")


def test_truncation_psi_zero_gives_the_w_avg_image() -> None:
    G = tiny_generator(16)
    img = G(torch.randn(3, 16), truncation_psi=0.0, noise_mode="const")
    w_avg_ws = G.mapping.w_avg.reshape(1, 1, -1).repeat(1, G.num_ws, 1)
    expected = G.synthesis(w_avg_ws, noise_mode="const")
    torch.testing.assert_close(img, expected.expand_as(img), rtol=1e-4, atol=1e-5)
    # psi = 0.5 lies halfway between W and w_avg
    z = torch.randn(2, 16)
    half = G.mapping(z, truncation_psi=0.5)
    torch.testing.assert_close(half, (G.mapping(z) + G.mapping.w_avg) / 2)
    # a cutoff truncates only the first ws
    cut = G.mapping(z, truncation_psi=0.0, truncation_cutoff=2)
    assert torch.allclose(cut[:, :2], G.mapping.w_avg.expand(2, 2, -1))
    assert torch.equal(cut[:, 2:], G.mapping(z)[:, 2:])


def test_style_mixing_takes_coarse_and_fine_layers_from_each_latent() -> None:
    G = tiny_generator(16)
    ws_a, ws_b = G.mapping(torch.randn(2, 16)), G.mapping(torch.randn(2, 16))
    assert torch.equal(style_mix(ws_a, ws_b, G.num_ws), ws_a)
    assert torch.equal(style_mix(ws_a, ws_b, 0), ws_b)
    mixed = style_mix(ws_a, ws_b, 2)
    assert torch.equal(mixed[:, :2], ws_a[:, :2]) and torch.equal(mixed[:, 2:], ws_b[:, 2:])
    img = G.synthesis(mixed, noise_mode="const")
    for ws in (ws_a, ws_b):
        assert (img - G.synthesis(ws, noise_mode="const")).abs().mean() > 1e-3
    with pytest.raises(ValueError, match="cutoff"):
        style_mix(ws_a, ws_b, G.num_ws + 1)


def test_mapping_tracks_w_avg_in_training_only() -> None:
    G = tiny_generator(8).train()
    before = G.mapping.w_avg.clone()
    G.mapping(torch.randn(4, 16))
    assert not torch.equal(G.mapping.w_avg, before)
    G.eval()
    after = G.mapping.w_avg.clone()
    G.mapping(torch.randn(4, 16))
    assert torch.equal(G.mapping.w_avg, after)


def test_official_parameter_names() -> None:
    G = Generator(GeneratorConfig(img_resolution=16, **TINY))
    D = Discriminator(DiscriminatorConfig(img_resolution=16, channel_base=256, channel_max=32))
    g_keys, d_keys = set(G.state_dict()), set(D.state_dict())
    for key in [
        "mapping.fc0.weight",
        "mapping.fc1.bias",
        "mapping.w_avg",
        "synthesis.b4.const",
        "synthesis.b4.resample_filter",
        "synthesis.b4.conv1.affine.weight",
        "synthesis.b8.conv0.noise_const",
        "synthesis.b8.conv0.noise_strength",
        "synthesis.b16.conv1.resample_filter",
        "synthesis.b16.torgb.affine.bias",
        "synthesis.b16.torgb.weight",
    ]:
        assert key in g_keys, key
    for key in [
        "b16.fromrgb.weight",
        "b16.conv1.weight",
        "b16.skip.weight",
        "b8.conv0.bias",
        "b4.conv.weight",
        "b4.fc.weight",
        "b4.out.bias",
    ]:
        assert key in d_keys, key
    assert "b8.fromrgb.weight" not in d_keys  # resnet D reads the image once


def test_full_width_ffhq_1024_parameter_count() -> None:
    """The official FFHQ 1024 config-f generator has 30,370,060 parameters; the 1024 px D builds too."""
    G = Generator(GeneratorConfig(img_resolution=1024))
    assert sum(p.numel() for p in G.parameters()) == 30_370_060
    D = Discriminator(DiscriminatorConfig(img_resolution=1024))
    assert D.b1024.fromrgb.weight.shape == (32, 3, 1, 1) and D.b4.fc.weight.shape == (512, 512 * 16)


def test_resampling_filters_preserve_constant_images() -> None:
    f = ops.setup_filter([1, 3, 3, 1])
    x = torch.full([1, 2, 8, 8], 0.7)
    up = ops.upsample2d(x, f)
    down = ops.downsample2d(x, f)
    assert up.shape == (1, 2, 16, 16) and down.shape == (1, 2, 4, 4)
    torch.testing.assert_close(up[..., 2:-2, 2:-2], torch.full_like(up[..., 2:-2, 2:-2], 0.7))
    torch.testing.assert_close(down[..., 1:-1, 1:-1], torch.full_like(down[..., 1:-1, 1:-1], 0.7))


def test_conv2d_resample_matches_resample_then_convolve() -> None:
    """The fast paths equal the plain order of operations (zero-insert, pad, filter, conv, subsample) exactly."""
    torch.manual_seed(1)
    f = ops.setup_filter([1, 3, 3, 1])
    x = torch.randn(2, 3, 8, 8)
    w = torch.randn(4, 3, 3, 3)
    # up x2, 3x3 conv, padding 1: pads are 1 + (4 + 2 - 1) // 2 = 3 before and 1 + (4 - 2) // 2 = 2 after
    for flip_weight in (True, False):
        fast_up = ops.conv2d_resample(x, w, f=f, up=2, padding=1, flip_weight=flip_weight)
        kernel = w if flip_weight else w.flip([2, 3])
        plain_up = F.conv2d(ops.upfirdn2d(x, f, up=2, padding=[3, 2, 3, 2], gain=4), kernel)
        torch.testing.assert_close(fast_up, plain_up, rtol=1e-4, atol=1e-5)
        interior = F.conv2d(ops.upsample2d(x, f), kernel, padding=1)[..., 2:-2, 2:-2]
        torch.testing.assert_close(fast_up[..., 2:-2, 2:-2], interior, rtol=1e-4, atol=1e-5)
    # down x2: pads are 1 + (4 - 2 + 1) // 2 = 2 and 1 + (4 - 2) // 2 = 2; conv, then filter, then subsample
    fast_down = ops.conv2d_resample(x, w, f=f, down=2, padding=1)
    plain_down = ops.upfirdn2d(F.conv2d(F.pad(x, [2, 2, 2, 2]), w), f, down=2)
    torch.testing.assert_close(fast_down, plain_down, rtol=1e-4, atol=1e-5)
    # grouped (one group per sample) equals per-sample convolutions
    wg = torch.randn(2 * 4, 3, 3, 3)
    grouped = ops.conv2d_resample(x.reshape(1, 6, 8, 8), wg, f=f, up=2, padding=1, groups=2).reshape(
        2, 4, 16, 16
    )
    single = torch.cat(
        [ops.conv2d_resample(x[i : i + 1], wg[4 * i : 4 * i + 4], f=f, up=2, padding=1) for i in range(2)]
    )
    torch.testing.assert_close(grouped, single, rtol=1e-4, atol=1e-5)


def test_bias_act_gains_and_clamp() -> None:
    x = torch.tensor([[-1.0, 2.0]])
    b = torch.tensor([0.5, -0.5])
    out = ops.bias_act(x, b, act="lrelu")
    torch.testing.assert_close(out, torch.tensor([[-0.1, 1.5]]) * 2**0.5)
    assert ops.bias_act(x * 100, act="linear", clamp=3).abs().max() == 3
    with pytest.raises(ValueError, match="unknown activation"):
        ops.bias_act(x, act="gelu")


def test_configs_round_trip_and_reject_bad_values() -> None:
    cfg = GeneratorConfig(img_resolution=64, **TINY)
    assert GeneratorConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="power of two"):
        GeneratorConfig(img_resolution=48)
    with pytest.raises(ValueError, match="unknown fields"):
        DiscriminatorConfig.from_dict({"img_resolution": 64, "colour": 3})
