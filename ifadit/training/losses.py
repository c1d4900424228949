"""StyleGAN2 losses: non-saturating logistic GAN loss, R1 gradient penalty, path-length regularization, and an
optional identity-spread term that keeps generated faces apart by a frozen face recognizer."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def g_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator loss softplus(-D(G(z))), averaged over the batch."""
    return F.softplus(-fake_logits).mean()


def d_logistic(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator loss softplus(D(G(z))) + softplus(-D(x)), averaged over the batch."""
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def r1_penalty(real_img: torch.Tensor, real_logits: torch.Tensor) -> torch.Tensor:
    """Per-sample squared gradient norm of D's logits w.r.t. the real images ([N]); `real_img` needs grad."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real_img, create_graph=True)
    return grad.square().sum(dim=[1, 2, 3])


def identity_spread(descriptors: torch.Tensor, margin: float) -> torch.Tensor:
    """Mode-seeking hinge on identity: mean of relu(margin - |d_i - d_{i+1}|) over neighbouring samples of the
    batch (`descriptors` [N,D], N >= 2, recognizer units, e.g. dlib L2). Pairs already `margin` apart give
    nothing, so only faces that look like one person are pushed apart; the discriminator keeps them faces."""
    if descriptors.shape[0] < 2:
        raise ValueError(f"identity spread needs at least 2 samples, got {descriptors.shape[0]}")
    distances = (descriptors - descriptors.roll(1, dims=0)).norm(dim=1)
    return F.relu(margin - distances).mean()


class PathLengthRegularizer:
    """Path-length penalty of StyleGAN2: keep |J_w^T y| close to its running mean `pl_mean`."""

    def __init__(self, device: str | torch.device = "cpu", decay: float = 0.01) -> None:
        self.decay = decay
        self.pl_mean = torch.zeros([], device=device)

    def penalty(self, img: torch.Tensor, ws: torch.Tensor) -> torch.Tensor:
        """Per-sample penalty [N]; `img` must have been computed from `ws` with a graph."""
        noise = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
        (grad,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
        lengths = grad.square().sum(dim=2).mean(dim=1).sqrt()
        self.pl_mean = self.pl_mean.lerp(lengths.mean().detach(), self.decay)
        return (lengths - self.pl_mean).square()
