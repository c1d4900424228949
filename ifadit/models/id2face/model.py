"""`Id2FaceModel`: frozen recognizer + identity VAE + attribute encoder + soft-gating harmonizer + denoiser.

    u_src  = unit(recognizer(img) - id_mean)                        identity code of the source
    z_attr = E_attr(img)                                            non-identity attributes (pose, light, ...)
    u_new  = OIM(VAE.decode(R_k · VAE.mu(u_src)), u_src)            keyed prior draw, orthogonal to the source
    img'   = DDIM(denoiser(. | harmonizer(u_new, z_attr, t)), noise_k)

`R_k` and the starting noise come from one integer `seed` (the backend derives it from the key), so the same
face under the same seed gives the same output whatever else is in the batch. Classifier-free guidance on the
identity (`config.guidance`) contrasts the condition with a zero identity code. Images are `img` [N,3,R,R] in
[-1, 1]; design and training: `ifadit.training.id2face`, docs/backends.md.
"""

from __future__ import annotations

import torch
from torch import nn

from ifadit.models.id2face.config import Id2FaceConfig
from ifadit.models.id2face.diffusion import cosine_alpha_bars, ddim_sample
from ifadit.models.id2face.identity import (
    IdentityVAE,
    identity_codes,
    keyed_rotation,
    orthogonal_identity_mapping,
)
from ifadit.models.id2face.networks import Denoiser, Harmonizer
from ifadit.models.ifadit.encoders import AttributeEncoder, EncoderConfig


class Id2FaceModel(nn.Module):
    """Non-reversible diffusion anonymizer on canonical crops; `recognizer` maps img -> [N, id_dim]."""

    id_mean: torch.Tensor  # [id_dim] mean recognizer descriptor of the training crops
    alpha_bars: torch.Tensor  # [T] cosine schedule (a buffer so it follows .to(device); not saved)

    def __init__(self, config: Id2FaceConfig, recognizer: nn.Module) -> None:
        super().__init__()
        self.config = config
        self.recognizer = recognizer.eval().requires_grad_(False)
        self.vae = IdentityVAE(config.id_dim, config.id_latent, config.id_hidden)
        self.encoder = AttributeEncoder(
            EncoderConfig(
                config.resolution, config.attr_dim, config.enc_channels, max(config.enc_channels, 256)
            )
        )
        self.harmonizer = Harmonizer(config.id_dim, config.attr_dim, config.emb_dim)
        self.denoiser = Denoiser(config.channels, config.emb_dim, config.attention)
        self.register_buffer("id_mean", torch.zeros(config.id_dim))
        self.register_buffer("alpha_bars", cosine_alpha_bars(config.timesteps), persistent=False)

    def train(self, mode: bool = True) -> Id2FaceModel:
        """Train mode for the learning parts only: the recognizer stays frozen in eval mode."""
        super().train(mode)
        self.recognizer.eval()
        return self

    def identity_code(self, img: torch.Tensor) -> torch.Tensor:
        """Unit identity codes u [N, id_dim] of canonical crops."""
        return identity_codes(self.recognizer(img), self.id_mean)

    def predict(
        self, x_t: torch.Tensor, t: torch.Tensor, u: torch.Tensor, z_attr: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(predicted velocity v [N,3,R,R], harmonizer gate [N, emb_dim]) for identity u and attributes z_attr."""
        t_emb = self.denoiser.time_embedding(t)
        cond, gate = self.harmonizer(u, z_attr, t_emb)
        return self.denoiser(x_t, t_emb + cond), gate

    def guided(
        self, x_t: torch.Tensor, t: torch.Tensor, u: torch.Tensor, z_attr: torch.Tensor, guidance: float
    ) -> torch.Tensor:
        """Velocity with classifier-free identity guidance: v(0) + guidance * (v(u) - v(0))."""
        if guidance == 1.0:
            return self.predict(x_t, t, u, z_attr)[0]
        both, _ = self.predict(
            torch.cat([x_t, x_t]),
            torch.cat([t, t]),
            torch.cat([u, torch.zeros_like(u)]),
            torch.cat([z_attr, z_attr]),
        )
        cond, uncond = both.chunk(2)
        return uncond + guidance * (cond - uncond)

    def sample(
        self,
        u: torch.Tensor,
        z_attr: torch.Tensor,
        seed: int,
        steps: int | None = None,
        guidance: float | None = None,
    ) -> torch.Tensor:
        """Render faces [N,3,R,R] for identity codes and attributes; every face starts from the same
        seeded noise, so a face's output does not depend on the rest of the batch."""
        res = self.config.resolution
        gen = torch.Generator().manual_seed(seed)
        noise = torch.randn(1, 3, res, res, generator=gen).to(u.device).expand(len(u), -1, -1, -1)
        scale = self.config.guidance if guidance is None else guidance
        return ddim_sample(
            lambda x, t: self.guided(x, t, u, z_attr, scale),
            noise,
            self.alpha_bars,
            steps if steps is not None else self.config.sample_steps,
        )

    def surrogate_identity(self, u_src: torch.Tensor, seed: int) -> torch.Tensor:
        """The keyed prior draw `decode(R_seed · mu(u_src))`, made orthogonal to `u_src` (unit norm)."""
        rotation = keyed_rotation(seed, self.config.id_latent).to(u_src.device)
        mu, _ = self.vae.encode(u_src)
        return orthogonal_identity_mapping(self.vae.decode(mu @ rotation.T), u_src)

    def anonymize(self, img: torch.Tensor, seed: int, steps: int | None = None) -> torch.Tensor:
        """Faces with the attributes of `img` and a new identity drawn with `seed` (values may leave [-1, 1])."""
        u_src = self.identity_code(img)
        return self.sample(self.surrogate_identity(u_src, seed), self.encoder(img), seed, steps)

    def reconstruct(self, img: torch.Tensor, seed: int, steps: int | None = None) -> torch.Tensor:
        """Faces rendered from their own identity (through the VAE) and attributes: the training target."""
        u_src = self.identity_code(img)
        mu, _ = self.vae.encode(u_src)
        return self.sample(self.vae.decode(mu), self.encoder(img), seed, steps)

    def learning_modules(self) -> dict[str, nn.Module]:
        """The parts that training changes, by name."""
        return {
            "vae": self.vae,
            "encoder": self.encoder,
            "harmonizer": self.harmonizer,
            "denoiser": self.denoiser,
        }
