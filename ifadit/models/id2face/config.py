"""`Id2FaceConfig`: the architecture of an ID²Face model, saved as config.json beside its weights."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ifadit.models.ifadit.encoders import config_from_dict
from ifadit.models.recognizer_names import TORCH_DLIB


@dataclass(frozen=True)
class Id2FaceConfig:
    """Sizes of the four learned parts (identity VAE, attribute encoder, harmonizer, denoiser) and the sampler."""

    resolution: int = 64  # side of the canonical crops, px (power of two)
    id_dim: int = 128  # recognizer descriptor size (dlib: 128)
    id_latent: int = 32  # identity VAE latent size
    id_hidden: int = 256  # identity VAE MLP width
    attr_dim: int = 64  # attribute code size
    enc_channels: int = 32  # first conv width of the attribute encoder
    emb_dim: int = 256  # width of the time embedding and the fused condition
    channels: tuple[int, ...] = (32, 64, 128, 128)  # denoiser widths, one level per halving from `resolution`
    attention: bool = True  # self-attention in the denoiser's bottleneck
    timesteps: int = 1000  # diffusion steps T of the cosine noise schedule
    sample_steps: int = 25  # DDIM steps at inference
    guidance: float = 2.0  # classifier-free identity guidance at inference, 1 = off (one denoiser pass)
    recognizer: str = TORCH_DLIB  # frozen identity recognizer; only TORCH_DLIB loads without being passed in

    def __post_init__(self) -> None:
        levels = len(self.channels)
        if levels < 1 or self.resolution % (2 ** (levels - 1)):
            raise ValueError(f"resolution {self.resolution} cannot be halved {levels - 1} times")
        if any(ch % 8 for ch in self.channels):
            raise ValueError(f"denoiser channels must be multiples of 8 (group norm), got {self.channels}")
        if not 1 <= self.sample_steps <= self.timesteps:
            raise ValueError(f"sample_steps must be in 1..{self.timesteps}, got {self.sample_steps}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Id2FaceConfig:
        """Inverse of `to_dict` (JSON lists become tuples); unknown keys are a `ValueError`."""
        data = dict(data)
        if "channels" in data:
            data["channels"] = tuple(data["channels"])
        result: Id2FaceConfig = config_from_dict(cls, data)
        return result
