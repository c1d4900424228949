"""`IfaditModel`: recognizer (frozen) + E_attr + mapper + generator (frozen) + keyed flow + re-read correction.

    anonymize: img --recognizer--> z_id --F(.; c)--> z_id' --M(z_id', E_attr(img))--> W+ --G--> img'
    restore:   img' --recognizer--> z_id' --correction--> --F^-1(.; c)--> z_id --M(z_id, E_attr(img'))--> W+ --G-->

Identity codes are the recognizer's 128-D descriptors standardised with per-dimension `id_mean` / `id_std`
buffers estimated on training crops (saved with the model). Rendering uses no per-pixel noise
(`RENDER_NOISE_MODE`), so every method is deterministic and surrogates do not share one fixed noise texture
(the shipped generator's constant noise paints the same pattern on every face, see its model card). Images are `img` [N,3,R,R] in [-1, 1]; conditions `c` are [cond_dim] or
[N, cond_dim] (`ifadit.models.ifadit.flow.condition_from_key`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ifadit.models.ifadit.encoders import (
    AttributeEncoder,
    EncoderConfig,
    Mapper,
    MapperConfig,
    ReadCorrection,
    config_from_dict,
)
from ifadit.models.ifadit.flow import FlowConfig, KeyedFlow
from ifadit.models.recognizer_names import TORCH_DLIB
from ifadit.models.stylegan2.networks import Generator, GeneratorConfig

RENDER_NOISE_MODE = "none"  # generator noise inputs off: deterministic, no shared texture
PLAUSIBLE_NORM = 1.25  # restored identity codes are kept within 1.25 * sqrt(id_dim), the edge of real codes


def plausible_code(z_id: torch.Tensor) -> torch.Tensor:
    """Scale identity codes longer than `PLAUSIBLE_NORM * sqrt(id_dim)` back onto that sphere.

    Standardised codes of real faces have norms near sqrt(id_dim) (docs/history/defaults.md has their spread).
    Inverting the flow with a wrong key can throw a code far outside, which the generator renders as no face
    at all; kept on the sphere it renders a plausible wrong face. A right key's code is inside and passes
    unchanged, and every key gets the same treatment, so the output does not tell keys apart.
    """
    limit = PLAUSIBLE_NORM * z_id.shape[1] ** 0.5
    return z_id * (limit / z_id.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0)


Publish = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""(renders, observed crops) -> the renders as the observed crops were published, all [N,3,R,R] in [-1, 1]."""


def uint8_levels(img: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] rounded to the 256 levels a published uint8 image has."""
    return ((img.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1


def refine_reading(
    observed: torch.Tensor, read_back: Callable[[torch.Tensor], torch.Tensor], steps: int
) -> torch.Tensor:
    """`steps` fixed-point steps e <- e + observed - read_back(e) from e = observed, towards the code whose
    read-back is `observed`; they converge where `read_back` is close enough to the identity (the spectral
    radius of I minus its Jacobian below 1), as the 64 px render-and-read is for surrogate codes."""
    estimate = observed
    for _ in range(steps):
        estimate = estimate + observed - read_back(estimate)
    return estimate


@dataclass(frozen=True)
class IfaditConfig:
    """Architecture of an `IfaditModel`; saved as config.json beside the weights."""

    generator: GeneratorConfig
    encoder: EncoderConfig
    mapper: MapperConfig
    flow: FlowConfig
    correction_hidden: int = 256  # hidden width of the re-read correction
    recognizer: str = TORCH_DLIB  # frozen identity recognizer; only TORCH_DLIB loads without being passed in
    # Restore: times the re-read surrogate code is refined by rendering it again (`IfaditModel.reread`). Not
    # part of the model id (the weights' digest): it changes how closely a restore comes back, not what a key
    # means, and it needs no key.
    reread_refinements: int = 0

    def __post_init__(self) -> None:
        if self.reread_refinements < 0:
            raise ValueError(f"reread_refinements must be 0 or more, got {self.reread_refinements}")
        res, id_dim = self.generator.img_resolution, self.flow.dim
        if self.encoder.resolution != res:
            raise ValueError(f"encoder resolution {self.encoder.resolution} != generator resolution {res}")
        if (self.mapper.id_dim, self.mapper.attr_dim) != (id_dim, self.encoder.attr_dim):
            raise ValueError("mapper id_dim / attr_dim must match the flow dim and the encoder attr_dim")

    @property
    def resolution(self) -> int:
        return self.generator.img_resolution

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IfaditConfig:
        """Inverse of `to_dict`; unknown keys are a `ValueError`."""
        data = dict(data)
        parts = {
            "generator": GeneratorConfig,
            "encoder": EncoderConfig,
            "mapper": MapperConfig,
            "flow": FlowConfig,
        }
        for key, part in parts.items():
            data[key] = config_from_dict(part, data[key])
        return config_from_dict(cls, data)

    @classmethod
    def for_generator(
        cls,
        generator: GeneratorConfig,
        num_ws: int,
        id_dim: int = 128,
        attr_dim: int = 128,
        enc_channels: int = 32,
        mapper_hidden: int = 512,
        mapper_layers: int = 3,
        flow: FlowConfig | None = None,
        correction_hidden: int = 256,
        recognizer: str = TORCH_DLIB,
    ) -> IfaditConfig:
        """A consistent config around an existing generator."""
        flow = flow if flow is not None else FlowConfig(dim=id_dim)
        return cls(
            generator=generator,
            encoder=EncoderConfig(generator.img_resolution, attr_dim, enc_channels, max(enc_channels, 256)),
            mapper=MapperConfig(num_ws, generator.w_dim, id_dim, attr_dim, mapper_hidden, mapper_layers),
            flow=flow,
            correction_hidden=correction_hidden,
            recognizer=recognizer,
        )


class IfaditModel(nn.Module):
    """The reversible anonymizer on canonical crops; `recognizer` maps img [N,3,S,S] -> [N, flow.dim]."""

    id_mean: torch.Tensor  # [id_dim] mean of the recognizer's descriptors on training crops
    id_std: torch.Tensor  # [id_dim] their standard deviation

    def __init__(self, config: IfaditConfig, generator: Generator, recognizer: nn.Module) -> None:
        super().__init__()
        if generator.config != config.generator:
            raise ValueError("the generator's config differs from IfaditConfig.generator")
        self.config = config
        self.recognizer = recognizer.eval().requires_grad_(False)
        self.generator = generator.eval().requires_grad_(False)
        self.encoder = AttributeEncoder(config.encoder)
        self.mapper = Mapper(config.mapper)
        self.flow = KeyedFlow(config.flow)
        self.correction = ReadCorrection(config.flow.dim, config.correction_hidden)
        self.register_buffer("id_mean", torch.zeros(config.flow.dim))
        self.register_buffer("id_std", torch.ones(config.flow.dim))

    def train(self, mode: bool = True) -> IfaditModel:
        """Train mode for the learning parts only: the recognizer and generator stay frozen in eval mode."""
        super().train(mode)
        self.recognizer.eval()
        self.generator.eval()
        return self

    def set_identity_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store the descriptor statistics that standardise identity codes (std floored at 1e-4)."""
        with torch.no_grad():
            self.id_mean.copy_(mean)
            self.id_std.copy_(std.clamp_min(1e-4))

    def descriptor(self, img: torch.Tensor) -> torch.Tensor:
        """The recognizer's raw descriptors [N, id_dim] (dlib: same person when L2 < 0.6)."""
        return self.recognizer(img)

    def standardise(self, descriptor: torch.Tensor) -> torch.Tensor:
        return (descriptor - self.id_mean) / self.id_std

    def destandardise(self, z_id: torch.Tensor) -> torch.Tensor:
        """Identity codes back to the recognizer's descriptor space."""
        return z_id * self.id_std + self.id_mean

    def encode(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z_id [N, id_dim], z_attr [N, attr_dim]) of canonical crops `img`."""
        return self.standardise(self.descriptor(img)), self.encoder(img)

    def mapped(self, z_id: torch.Tensor, z_attr: torch.Tensor) -> torch.Tensor:
        """W+ [N, num_ws, w_dim] for the frozen generator."""
        return self.mapper(z_id, z_attr, self.generator.mapping.w_avg)

    def render(self, z_id: torch.Tensor, z_attr: torch.Tensor) -> torch.Tensor:
        """Generated crops [N,3,R,R] (unclamped) for identity and attribute codes."""
        return self.generator.synthesis(self.mapped(z_id, z_attr), noise_mode=RENDER_NOISE_MODE)

    def with_generator(self, generator: Generator) -> IfaditModel:
        """A copy of this model that renders with `generator` (same W+ shape and resolution): encoder, mapper,
        flow, correction and identity statistics carried over, the recognizer shared. Phase 1 continues such
        a model on another generator instead of starting its encoder and mapper from scratch."""
        own = self.generator
        if (generator.num_ws, generator.w_dim, generator.img_resolution) != (
            own.num_ws,
            own.w_dim,
            own.img_resolution,
        ):
            raise ValueError(
                f"the generator draws {generator.num_ws} x {generator.w_dim} W+ at {generator.img_resolution} px; "
                f"this model's mapper writes {own.num_ws} x {own.w_dim} at {own.img_resolution} px"
            )
        config = dataclasses.replace(self.config, generator=generator.config)
        model = IfaditModel(config, generator, self.recognizer)
        for name in ("encoder", "mapper", "flow", "correction"):
            getattr(model, name).load_state_dict(getattr(self, name).state_dict())
        model.set_identity_stats(self.id_mean, self.id_std)
        return model.to(self.id_mean.device)

    def surrogate(self, z_id: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """F(z_id ; c)."""
        return self.flow(z_id, c)

    def reread(self, img: torch.Tensor, publish: Publish | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(surrogate code, z_attr) read back from anonymized crops.

        The corrected re-read, then `config.reread_refinements` fixed-point steps on render-and-read: the
        estimate is rendered with the crops' attributes, published as the crops were (`publish(render, img)`;
        default: rounded to uint8), and moved by what separates that render's corrected re-read from the
        crops' (why two steps: docs/model.md, "Restore refinements"). Only public parts take part (no key), so
        a wrong key gains nothing from it.
        """
        z_read, z_attr = self.encode(img)
        published_as = publish if publish is not None else lambda render, _: uint8_levels(render)

        def read_back(code: torch.Tensor) -> torch.Tensor:
            published = published_as(self.render(code, z_attr), img)
            return self.correction(self.standardise(self.descriptor(published)))

        return refine_reading(self.correction(z_read), read_back, self.config.reread_refinements), z_attr

    def anonymize(self, img: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Anonymized crops under condition `c`: same attributes, surrogate identity."""
        z_id, z_attr = self.encode(img)
        return self.render(self.surrogate(z_id, c), z_attr)

    def restore(self, img: torch.Tensor, c: torch.Tensor, publish: Publish | None = None) -> torch.Tensor:
        """Restored crops from anonymized crops; a wrong `c` renders a plausible wrong identity (`plausible_code`).
        `publish`: how the crops were published (see `reread`)."""
        z_surrogate, z_attr = self.reread(img, publish)
        return self.render(plausible_code(self.flow.inverse(z_surrogate, c)), z_attr)

    def learning_modules(self) -> dict[str, nn.Module]:
        """The parts that training changes, by name."""
        return {
            "encoder": self.encoder,
            "mapper": self.mapper,
            "flow": self.flow,
            "correction": self.correction,
        }
