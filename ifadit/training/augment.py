"""Adaptive discriminator augmentation (ADA): a differentiable augment pipe and its probability controller.

The pipe applies, each with probability `p` per image, the 'bgc' set of Karras et al. 2020: x-flip,
90-degree rotations, integer translation, isotropic scaling, rotation, anisotropic scaling, fractional
translation (one bilinear resampling with reflection padding), then brightness, contrast, luma flip, hue
rotation and saturation (one 4x4 colour matrix). Everything is differentiable, so G's gradients and R1 pass
through it. The controller raises `p` when D is over-confident on reals (r_t = E[sign(D(x))] above the
target) and lowers it otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

_LUMA = torch.tensor([1.0, 1.0, 1.0, 0.0]) / math.sqrt(3)


def _rot2(theta: torch.Tensor) -> torch.Tensor:
    """[N, 3, 3] rotations by `theta` radians."""
    c, s = torch.cos(theta), torch.sin(theta)
    m = torch.eye(3).repeat(theta.shape[0], 1, 1)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = c, -s, s, c
    return m


def _scale2(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    m = torch.eye(3).repeat(sx.shape[0], 1, 1)
    m[:, 0, 0], m[:, 1, 1] = sx, sy
    return m


def _translate2(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    m = torch.eye(3).repeat(tx.shape[0], 1, 1)
    m[:, 0, 2], m[:, 1, 2] = tx, ty
    return m


def _gate(values: torch.Tensor, identity: float, p: float) -> torch.Tensor:
    """Keep each sample's random value with probability p, otherwise the identity value."""
    keep = torch.rand(values.shape[0]) < p
    return torch.where(keep, values, torch.full_like(values, identity))


def _geometry(n: int, size: int, p: float) -> torch.Tensor:
    """[N, 3, 3] inverse transforms in affine_grid's normalised coordinates (output -> input)."""
    px = 2.0 / size  # one pixel in normalised units
    m = _scale2(1 - 2 * _gate(torch.randint(0, 2, [n]).float(), 0, p), torch.ones(n))  # x-flip
    m = m @ _rot2(_gate(torch.randint(0, 4, [n]).float(), 0, p) * (math.pi / 2))  # rotate 90
    t = (
        torch.round((torch.rand(2, n) * 2 - 1) * 0.125 * size) * px * (torch.rand(n) < p)
    )  # integer translation
    m = m @ _translate2(t[0], t[1])
    s = _gate(2 ** (torch.randn(n) * 0.2), 1, p)  # isotropic scaling
    m = m @ _scale2(s, s)
    p_rot = 1 - math.sqrt(1 - p)  # rotation applied twice, around anisotropic scaling
    m = m @ _rot2(_gate((torch.rand(n) * 2 - 1) * math.pi, 0, p_rot))
    a = _gate(2 ** (torch.randn(n) * 0.2), 1, p)  # anisotropic scaling
    m = m @ _scale2(a, 1 / a)
    m = m @ _rot2(_gate((torch.rand(n) * 2 - 1) * math.pi, 0, p_rot))
    tf = (
        torch.randn(2, n) * 0.125 * 2 * (torch.rand(n) < p)
    )  # fractional translation (std 0.125 of the image)
    m = m @ _translate2(tf[0], tf[1])
    return m


def _colour(n: int, p: float) -> torch.Tensor:
    """[N, 4, 4] colour transforms acting on homogeneous RGB in [-1, 1]."""
    eye = torch.eye(4).repeat(n, 1, 1)
    b = _gate(torch.randn(n) * 0.2, 0, p)  # brightness
    m = eye.clone()
    m[:, :3, 3] = b[:, None]
    c = _gate(2 ** (torch.randn(n) * 0.5), 1, p)  # contrast
    m = _diag(c, c, c) @ m
    v = _LUMA
    outer = torch.outer(v, v)
    flip = _gate(torch.randint(0, 2, [n]).float(), 0, p)  # luma flip: reflect along the luma axis
    m = (eye - 2 * outer * flip[:, None, None]) @ m
    theta = _gate((torch.rand(n) * 2 - 1) * math.pi, 0, p)  # hue rotation around the luma axis
    m = _rot_axis(v[:3], theta) @ m
    s = _gate(2 ** (torch.randn(n) * 1.0), 1, p)  # saturation: scale away from the luma axis
    m = (outer + (eye - outer) * s[:, None, None]) @ m
    return m


def _diag(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    m = torch.eye(4).repeat(a.shape[0], 1, 1)
    m[:, 0, 0], m[:, 1, 1], m[:, 2, 2] = a, b, c
    return m


def _rot_axis(axis: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """[N, 4, 4] rotations by theta around the unit 3-vector `axis` (Rodrigues)."""
    x, y, z = (float(v) for v in axis)
    k = torch.tensor([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    s, c = torch.sin(theta)[:, None, None], torch.cos(theta)[:, None, None]
    r = torch.eye(3) + s * k + (1 - c) * (k @ k)
    m = torch.eye(4).repeat(theta.shape[0], 1, 1)
    m[:, :3, :3] = r
    return m


class AugmentPipe(torch.nn.Module):
    """Differentiable ADA 'bgc' augmentation of images in [-1, 1], each op gated by probability `p`."""

    p: torch.Tensor

    def __init__(self, geometric: bool = True, colour: bool = True) -> None:
        super().__init__()
        self.geometric = geometric
        self.colour = colour
        self.register_buffer("p", torch.zeros([]))

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        p = float(self.p)
        if p <= 0:
            return img
        n, c, h, w = img.shape
        if self.geometric:
            m = _geometry(n, w, p).to(img.device)
            if not torch.equal(m, torch.eye(3, device=img.device).expand_as(m)):
                grid = F.affine_grid(m[:, :2, :], [n, c, h, w], align_corners=False)
                img = F.grid_sample(
                    img, grid, mode="bilinear", padding_mode="reflection", align_corners=False
                )
        if self.colour and c == 3:
            m = _colour(n, p).to(img.device)
            flat = img.reshape(n, 3, h * w)
            img = (m[:, :3, :3] @ flat + m[:, :3, 3:]).reshape(n, 3, h, w)
        return img


@dataclass
class AdaController:
    """Tunes the augmentation probability from the sign of D's outputs on reals, as ADA does."""

    target: float = 0.6  # desired r_t = E[sign(D(real))]
    interval: int = 4  # steps between adjustments
    speed_kimg: float = 100.0  # thousands of images for p to move from 0 to 1 at full overfitting
    p: float = 0.0  # current probability
    sign_sum: float = 0.0  # accumulated sum of sign(D(real)) since the last adjustment
    count: int = 0  # reals accumulated since the last adjustment
    steps: int = 0  # steps since the last adjustment
    last_rt: float = 0.0  # r_t at the last adjustment

    def accumulate(self, real_logits: torch.Tensor) -> None:
        """Record D's logits on (augmented) reals of one step."""
        self.sign_sum += float(torch.sign(real_logits.detach()).sum())
        self.count += real_logits.numel()

    def step(self, batch_size: int) -> float:
        """Close one training step; every `interval` steps move p by sign(r_t - target). Returns p."""
        self.steps += 1
        if self.steps >= self.interval and self.count > 0:
            self.last_rt = self.sign_sum / self.count
            adjust = (
                math.copysign(1.0, self.last_rt - self.target)
                * batch_size
                * self.steps
                / (self.speed_kimg * 1000)
            )
            self.p = min(max(self.p + adjust, 0.0), 1.0)
            self.sign_sum, self.count, self.steps = 0.0, 0, 0
        return self.p
