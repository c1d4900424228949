"""The structured identity space of ID²Face: an identity VAE over unit identity codes, keyed prior draws and
Orthogonal Identity Mapping.

Identity codes `u` are the frozen recognizer's descriptors, centred on their training mean and scaled to unit
length (cosines of centred dlib descriptors separate people far better than raw ones, see
`ifadit.training.phase1`). The VAE maps `u` [N, id_dim] to a Gaussian posterior over `z` [N, latent] and decodes
`z` back to a unit code; its prior N(0, I) is the space anonymization draws new identities from.

At inference a new identity is `decode(R_k · mu(u_src))`: `R_k` is a random rotation of the latent space seeded
by the key. Posterior means of real faces follow the prior, and a rotation keeps N(0, I), so this is a draw from
the prior whose randomness is the key's, yet it is deterministic per face and key, continuous in the face (one
person stays one surrogate across video frames) and differs between people under one key. Orthogonal Identity
Mapping then removes the draw's component along the source code, so the surrogate's cosine to the source is 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ifadit.models.ifadit.encoders import mlp
from ifadit.models.ifadit.flow import haar_orthogonal

LOGVAR_RANGE = (-10.0, 4.0)  # clamp of the posterior log-variance, keeps exp() finite early in training


class IdentityVAE(nn.Module):
    """MLP VAE over unit identity codes: u [N, id_dim] <-> z [N, latent]."""

    def __init__(self, id_dim: int, latent: int, hidden: int) -> None:
        super().__init__()
        self.latent = latent
        self.encoder = mlp([id_dim, hidden, hidden, 2 * latent], zero_last=False)
        self.decoder = mlp([latent, hidden, hidden, id_dim], zero_last=False)

    def encode(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior (mean, log-variance), each [N, latent]."""
        mu, logvar = self.encoder(u).chunk(2, dim=1)
        return mu, logvar.clamp(*LOGVAR_RANGE)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Unit identity codes [N, id_dim] for latents z [N, latent]."""
        return F.normalize(self.decoder(z), dim=1)

    def forward(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(reconstruction from a reparameterised posterior draw, mean, log-variance).

        The draw comes from torch's global CPU generator whatever the device, so training runs resume exactly."""
        mu, logvar = self.encode(u)
        z = mu + torch.randn(mu.shape).to(mu.device) * (0.5 * logvar).exp()
        return self.decode(z), mu, logvar

    def sample_prior(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """`count` unit identity codes decoded from z ~ N(0, I)."""
        device = next(self.parameters()).device
        z = torch.randn(count, self.latent, generator=generator).to(device)
        return self.decode(z)


def identity_codes(descriptor: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Unit identity codes [N, D] from recognizer descriptors [N, D] and their training mean [D]."""
    return F.normalize(descriptor - mean, dim=1)


def orthogonal_identity_mapping(new: torch.Tensor, source: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """`new` [N, D] made orthogonal to `source` [N, D], keeping the norm of `new`.

    The component of `new` along `source` is removed (Gram–Schmidt) and the rest rescaled to |new|. A `new`
    parallel to `source` has no orthogonal part; it is replaced by the first basis direction orthogonalised
    instead, so the result is always defined and orthogonal.
    """
    unit = F.normalize(source, dim=1, eps=eps)
    rest = new - (new * unit).sum(1, keepdim=True) * unit
    fallback = torch.zeros_like(new)
    fallback[:, 0] = 1.0
    fallback = fallback - (fallback * unit).sum(1, keepdim=True) * unit
    degenerate = rest.norm(dim=1, keepdim=True) < eps * new.norm(dim=1, keepdim=True).clamp_min(eps)
    rest = torch.where(degenerate, fallback, rest)
    return F.normalize(rest, dim=1, eps=eps) * new.norm(dim=1, keepdim=True)


def keyed_rotation(seed: int, dim: int) -> torch.Tensor:
    """A random rotation [dim, dim] (Haar-distributed orthogonal matrix) determined by `seed`."""
    gen = torch.Generator().manual_seed(seed)
    gauss = torch.randn(dim, dim, generator=gen, dtype=torch.float64)
    return haar_orthogonal(gauss[None])[0].to(torch.float32)
