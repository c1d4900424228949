"""StyleGAN2 in the layout of NVIDIA stylegan2-ada-pytorch (pure PyTorch ops)."""

from ifadit.models.stylegan2.legacy import load_official_generator
from ifadit.models.stylegan2.networks import (
    Discriminator,
    DiscriminatorConfig,
    Generator,
    GeneratorConfig,
    style_mix,
)

__all__ = [
    "Discriminator",
    "DiscriminatorConfig",
    "Generator",
    "GeneratorConfig",
    "load_official_generator",
    "style_mix",
]
