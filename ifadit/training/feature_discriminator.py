"""A second discriminator that judges faces in the feature space of the frozen dlib face recognizer.

Projected GAN (Sauer et al. 2021) and Vision-aided GAN (Kumari et al. 2022) show that small trainable heads on
the features of a frozen pretrained network make a GAN learn from a few thousand images in far fewer images
seen. Here the frozen network is the torch dlib ResNet that the identity-spread term already runs on every fake
(the independent `faceres` recognizer, used to measure the generator, stays out of training). Each tapped
residual stage gets a 1x1-conv head that scores every position: a patch discriminator per scale.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ifadit.models.dlib_resnet import BLOCKS, DlibResNet
from ifadit.training.taps import FeatureTap

STAGES = {f"blocks.{i}": out_ch for i, (out_ch, _) in enumerate(BLOCKS)}  # residual stage -> its channels


class FeatureHeads(nn.Module):
    """One head per tapped feature map: 1x1 conv, leaky ReLU, 1x1 conv to a logit per position."""

    def __init__(self, channels: Sequence[int], hidden: int = 64) -> None:
        super().__init__()
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, hidden, 1), nn.LeakyReLU(0.2), nn.Conv2d(hidden, 1, 1))
            for c in channels
        )

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Logit maps [N,1,H_i,W_i], one per feature map."""
        if len(features) != len(self.heads):
            raise ValueError(f"expected {len(self.heads)} feature maps, got {len(features)}")
        return [head(f) for head, f in zip(self.heads, features, strict=True)]


class RecognizerFeatures:
    """The frozen recognizer's descriptor and its tapped feature maps, from one forward pass."""

    def __init__(self, recognizer: DlibResNet, layers: Sequence[str]) -> None:
        unknown = [name for name in layers if name not in STAGES]
        if unknown:
            raise ValueError(
                f"no feature discriminator tap for {unknown}; choose residual stages blocks.0-13"
            )
        self.layers = tuple(layers)
        self.tap = FeatureTap(recognizer, self.layers)

    @property
    def channels(self) -> list[int]:
        return [STAGES[name] for name in self.layers]

    def __call__(self, img: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(descriptor [N,128], feature maps) of images `img` [N,3,S,S] in [-1, 1]."""
        return self.tap(img)
