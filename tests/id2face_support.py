"""Test support for ID²Face: tiny seeded models (stand-in or real dlib recognizer) on 16 px crops."""

from __future__ import annotations

import torch
from torch import nn

from ifadit.models.id2face import Id2FaceConfig, Id2FaceModel
from tests.ifadit_support import ID_DIM, RES, STANDIN, TinyRecognizer

TINY = {
    "resolution": RES,
    "id_latent": 4,
    "id_hidden": 16,
    "attr_dim": 8,
    "enc_channels": 8,
    "emb_dim": 16,
    "channels": (8, 16),
    "timesteps": 50,
    "sample_steps": 3,
}


def tiny_config(recognizer: str = STANDIN, id_dim: int = ID_DIM) -> Id2FaceConfig:
    """Tiny parts; `id_dim` 128 for the real dlib recognizer."""
    return Id2FaceConfig(id_dim=id_dim, recognizer=recognizer, **TINY)  # type: ignore[arg-type]


def tiny_id2face(
    seed: int = 0, recognizer: nn.Module | None = None, trained_like: bool = True
) -> Id2FaceModel:
    """A tiny seeded model; `trained_like` perturbs the weights (zero-initialised output layers included) so
    identities, attributes and seeds change the output. A given `recognizer` is taken to be dlib's (128-D)."""
    if recognizer is None:
        config, recognizer = tiny_config(), TinyRecognizer()
    else:
        config = tiny_config("torch-dlib", id_dim=128)
    torch.manual_seed(seed)
    model = Id2FaceModel(config, recognizer)
    if trained_like:
        with torch.no_grad():
            for module in model.learning_modules().values():
                for p in module.parameters():
                    p.add_(0.2 * torch.randn_like(p))
    return model.eval()
