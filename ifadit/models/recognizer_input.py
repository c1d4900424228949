"""The input step the torch recognizer networks share (`dlib_resnet`, `faceres`): accept `img` [N, 3, H, W] in
[-1, 1] at any size and bring it to the network's square input with one resize (antialiased bilinear), so
every recognizer reads a crop of another size the same way."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sized_img(img: torch.Tensor, size: int) -> torch.Tensor:
    """`img` at `size` x `size` px (unchanged when it already is); `ValueError` unless it is [N, 3, H, W]."""
    if img.ndim != 4 or img.shape[1] != 3:
        raise ValueError(f"expected img [N,3,H,W], got {tuple(img.shape)}")
    if img.shape[2:] != (size, size):
        img = F.interpolate(img, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return img
