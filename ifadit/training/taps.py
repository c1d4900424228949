"""Read intermediate feature maps of a frozen network in the same forward pass as its output.

The perceptual term of phase 1 compares the recognizer's residual-block activations of a reconstruction and of
its original (no torchvision/LPIPS here): one recognizer pass yields the identity descriptor and the features.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class FeatureTap:
    """Call `module` on an input and also return the outputs of its submodules named `layers`."""

    def __init__(self, module: nn.Module, layers: Sequence[str]) -> None:
        found = dict(module.named_modules())
        missing = [name for name in layers if name not in found]
        if missing:
            raise ValueError(f"{type(module).__name__} has no submodules {missing}")
        self.module = module
        self.layers = [found[name] for name in layers]

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        features: list[torch.Tensor] = []

        def keep(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            features.append(output)

        handles = [layer.register_forward_hook(keep) for layer in self.layers]
        try:
            out = self.module(x)
        finally:
            for handle in handles:
                handle.remove()
        return out, features
