"""Test support for iFADIT: a tiny seeded generator and stand-in recognizer, real 16 px astronaut crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ifadit.models.ifadit.flow import FlowConfig
from ifadit.models.ifadit.model import IfaditConfig, IfaditModel
from ifadit.models.stylegan2.checkpoint import save_generator
from ifadit.models.stylegan2.networks import Generator, GeneratorConfig

RES = 16
ID_DIM = 16
GENERATOR = GeneratorConfig(
    img_resolution=RES, z_dim=16, w_dim=16, mapping_layers=2, channel_base=256, channel_max=32
)
STANDIN = "tiny-standin"


class TinyRecognizer(nn.Module):
    """Seeded stand-in for the dlib ResNet: img [N,3,S,S] -> [N, 16], with submodules `body.1`, `body.3`."""

    def __init__(self, seed: int = 7) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU())
        self.fc = nn.Linear(16 * 4 * 4, ID_DIM)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if img.shape[2:] != (RES, RES):
            img = F.interpolate(img, size=(RES, RES), mode="bilinear", antialias=True)
        return self.fc(self.body(img).flatten(1))


def tiny_generator(seed: int = 3) -> Generator:
    torch.manual_seed(seed)
    return Generator(GENERATOR).eval()


def save_tiny_generator(folder: Path, seed: int = 3) -> Path:
    save_generator(tiny_generator(seed), folder, name="tiny-gen")
    return folder


def tiny_config(recognizer: str = STANDIN, id_dim: int = ID_DIM) -> IfaditConfig:
    """Tiny parts; `id_dim` 128 for the real dlib recognizer."""
    generator = tiny_generator()
    return IfaditConfig.for_generator(
        GENERATOR,
        generator.num_ws,
        id_dim=id_dim,
        attr_dim=8,
        enc_channels=8,
        mapper_hidden=32,
        mapper_layers=2,
        flow=FlowConfig(dim=id_dim, cond_dim=8, blocks=2, hidden=16),
        correction_hidden=16,
        recognizer=recognizer,
    )


def tiny_model(seed: int = 0, recognizer: nn.Module | None = None, trained_like: bool = True) -> IfaditModel:
    """A tiny model; `trained_like` perturbs the zero-initialised last layers so keys and codes matter.

    Without `recognizer` it uses the stand-in; a given recognizer is taken to be the real dlib port (128-D).
    """
    np.random.seed(seed)  # FrEIA's fixed rotations come from numpy's generator
    if recognizer is None:
        config, recognizer = tiny_config(), TinyRecognizer()
    else:
        config = tiny_config("torch-dlib", id_dim=128)
    model = IfaditModel(config, tiny_generator(), recognizer)
    torch.manual_seed(seed)
    if trained_like:
        with torch.no_grad():
            for module in (model.mapper, model.flow, model.correction):
                for p in module.parameters():
                    if p.requires_grad:
                        p.add_(0.2 * torch.randn_like(p))
    return model.eval()


def astronaut_crops(astronaut: np.ndarray, count: int = 8, size: int = RES) -> np.ndarray:
    """`count` uint8 crops around the astronaut's face (different offsets and sizes), [N, size, size, 3]."""
    images = []
    for i in range(count):
        x0, y0, side = 150 + 6 * i, 50 + 4 * i, 120 + 5 * i
        crop = Image.fromarray(astronaut[y0 : y0 + side, x0 : x0 + side]).resize(
            (size, size), Image.Resampling.BICUBIC
        )
        images.append(np.asarray(crop))
    return np.stack(images)


def crops_npz(folder: Path, crops: np.ndarray) -> Path:
    path = folder / f"crops-{crops.shape[1]}.npz"
    np.savez(path, images=crops, names=np.array([f"a{i}" for i in range(len(crops))]))
    return path


def to_img(crops: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 127.5 - 1
