"""StyleGAN2 generator checkpoints in the model-folder convention (`ifadit.models.model_folder`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ifadit.errors import ModelError
from ifadit.models.model_folder import (
    checked_weights,
    cpu_tensors,
    model_id,
    read_model_config,
    write_model_folder,
)
from ifadit.models.stylegan2.networks import Generator, GeneratorConfig

GENERATOR_KIND = "stylegan2-generator"


def save_generator(
    generator: Generator,
    folder: Path,
    name: str,
    card: dict[str, Any] | None = None,
    dtype: torch.dtype = torch.float32,
) -> str:
    """Write `generator` to `folder` (created) and return its model id; `card` goes to model_card.json."""
    fields = {"dtype": str(dtype).removeprefix("torch."), "config": generator.config.to_dict()}
    return write_model_folder(
        folder, cpu_tensors(generator.state_dict(), dtype), GENERATOR_KIND, name, fields, card
    )


def read_config(folder: Path) -> dict[str, Any]:
    """The parsed config.json of a checkpoint folder, with ModelError when absent or malformed."""
    return read_model_config(
        folder, GENERATOR_KIND, hint="a checkpoint folder holds model.safetensors and config.json"
    )


def load_generator(folder: Path, expected_sha256: str | None = None) -> tuple[Generator, str]:
    """Load a generator checkpoint after checking its sha256; returns (generator in eval mode, model id)."""
    folder = Path(folder)
    data = read_config(folder)
    weights, digest = checked_weights(folder, data, expected_sha256, what="checkpoint")
    try:
        config = GeneratorConfig.from_dict(data["config"])
        generator = Generator(config)
        tensors = load_file(str(weights))
        generator.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=True)
    except (ValueError, TypeError, RuntimeError, SafetensorError) as exc:
        raise ModelError(f"{folder}: weights do not match the architecture in config.json: {exc}") from None
    return generator.eval().requires_grad_(False), model_id(str(data.get("name", "generator")), digest)
