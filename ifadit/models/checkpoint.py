"""Generator checkpoints: `model.safetensors` + `config.json` (+ optional `model_card.json`), sha256-checked.

A checkpoint folder holds the weights in safetensors (no code runs on load), the architecture config, the
sha256 of the weights file and the model id `<name>-<sha256[:12]>` that outputs and manifests cite.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ifadit.errors import ModelError
from ifadit.models.stylegan2.networks import Generator, GeneratorConfig

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "model_card.json"
GENERATOR_KIND = "stylegan2-generator"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_id(name: str, sha256: str) -> str:
    """`<name>-<first 12 hex digits of the weights' sha256>`."""
    return f"{name}-{sha256[:12]}"


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write sorted, indented JSON atomically (temporary file + rename)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)


def save_generator(
    generator: Generator,
    folder: Path,
    name: str,
    card: dict[str, Any] | None = None,
    dtype: torch.dtype = torch.float32,
) -> str:
    """Write `generator` to `folder` (created) and return its model id; `card` goes to model_card.json."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in generator.state_dict().items()}
    tmp = folder / f".{WEIGHTS_FILE}.tmp"
    save_file(tensors, str(tmp), metadata={"kind": GENERATOR_KIND})
    os.replace(tmp, folder / WEIGHTS_FILE)
    digest = sha256_file(folder / WEIGHTS_FILE)
    mid = model_id(name, digest)
    config = {
        "kind": GENERATOR_KIND,
        "name": name,
        "model_id": mid,
        "sha256": digest,
        "dtype": str(dtype).removeprefix("torch."),
        "config": generator.config.to_dict(),
    }
    write_json(folder / CONFIG_FILE, config)
    if card is not None:
        write_json(folder / CARD_FILE, {"model_id": mid, "sha256": digest, **card})
    return mid


def read_config(folder: Path) -> dict[str, Any]:
    """The parsed config.json of a checkpoint folder, with ModelError when absent or malformed."""
    path = folder / CONFIG_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(
            f"{path}: missing", hint="a checkpoint folder holds model.safetensors and config.json"
        ) from None
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or data.get("kind") != GENERATOR_KIND or "config" not in data:
        raise ModelError(f"{path}: not a {GENERATOR_KIND} config")
    return data


def load_generator(folder: Path, expected_sha256: str | None = None) -> tuple[Generator, str]:
    """Load a generator checkpoint after checking its sha256; returns (generator in eval mode, model id)."""
    folder = Path(folder)
    data = read_config(folder)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelError(f"{weights}: missing")
    digest = sha256_file(weights)
    for label, want in (("config.json", data.get("sha256")), ("expected", expected_sha256)):
        if want is not None and want != digest:
            raise ModelError(
                f"{weights}: sha256 {digest[:12]}... does not match the {label} value {str(want)[:12]}...",
                hint="the file is corrupt or was replaced; fetch the checkpoint again",
            )
    try:
        config = GeneratorConfig.from_dict(data["config"])
        generator = Generator(config)
        tensors = load_file(str(weights))
        generator.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=True)
    except (ValueError, TypeError, RuntimeError, SafetensorError) as exc:
        raise ModelError(f"{folder}: weights do not match the architecture in config.json: {exc}") from None
    return generator.eval().requires_grad_(False), model_id(str(data.get("name", "generator")), digest)
