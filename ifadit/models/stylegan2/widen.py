"""Function-preserving widening of a trained generator: a wider G that draws exactly the same images at the start.

Training a wide G from scratch needs far more images than a CPU run shows it; widening a trained narrow G
keeps what it learned and gives the new channels room to grow (Net2Net's idea, for StyleGAN2's modulated
convolutions). Every tensor of the narrow G lands in the leading slice of the wide one; the rest keeps the wide
G's fresh initialisation, except:

- the weights that carry a *new* input channel into an *old* output channel (synthesis convolutions and toRGB)
  are zero, so old channels see nothing new and demodulation, which sums over a filter's inputs, is unchanged;
- the toRGB weights of old channels are scaled by sqrt(wide / narrow input channels), undoing the change of
  toRGB's equalised-learning-rate gain 1 / sqrt(input channels).

New channels draw fresh random filters, so their activations and the gradients of the zero weights are not zero
and training moves them from the first step.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from ifadit.errors import InputError
from ifadit.models.stylegan2.networks import Generator, GeneratorConfig, channels_at

_WIDTH_FIELDS = ("channel_base", "channel_max")


def check_widenable(narrow: GeneratorConfig, wide: GeneratorConfig) -> None:
    """InputError unless `wide` differs from `narrow` only in width, with at least as many channels everywhere."""
    same_apart_from_width = dataclasses.replace(
        wide, **{field: getattr(narrow, field) for field in _WIDTH_FIELDS}
    )
    if same_apart_from_width != narrow:
        raise InputError(
            f"generator architecture {wide.to_dict()} differs from {narrow.to_dict()} in more than its width",
            hint="only --channel-base and --channel-max may differ from the --init-generator checkpoint",
        )
    for res in (2**i for i in range(2, int(math.log2(narrow.img_resolution)) + 1)):
        before, after = (channels_at(res, c.channel_base, c.channel_max) for c in (narrow, wide))
        if after < before:
            raise InputError(
                f"generator width {wide.channel_base}/{wide.channel_max} has fewer channels at {res} px "
                f"than the checkpoint's {narrow.channel_base}/{narrow.channel_max}",
                hint="a warm start can widen a generator, not narrow it",
            )


@torch.no_grad()
def widen_generator(narrow: Generator, config: GeneratorConfig, seed: int = 0) -> Generator:
    """A fresh generator (training mode) of architecture `config`, wider than `narrow`'s, computing what `narrow` does.

    The new channels' random initialisation is drawn from `seed`. InputError when `config` is not a widening.
    """
    check_widenable(narrow.config, config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        wide = Generator(config)
    wide_state = wide.state_dict()
    for name, source in narrow.state_dict().items():
        target = wide_state[name]
        old = tuple(slice(0, n) for n in source.shape)
        if name.startswith("synthesis.") and name.endswith(".weight") and ".affine." not in name:
            old_in, new_in = source.shape[1], target.shape[1]
            gain = math.sqrt(new_in / old_in) if ".torgb." in name else 1.0
            target[: source.shape[0], old_in:] = 0  # new inputs -> old outputs
            target[old] = source * gain
        else:
            target[old] = source
    wide.load_state_dict(wide_state)
    return wide
