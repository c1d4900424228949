"""The model-folder convention every shipped model follows: `model.safetensors` + `config.json` (+ optional
`model_card.json`), sha256-checked.

A model folder holds the weights in safetensors (no code runs on load), config.json with the folder's kind,
the architecture config, the sha256 of the weights file and the model id `<name>-<sha256[:12]>` that outputs
and manifests cite. Writers replace files atomically; readers raise `ModelError` naming the file at fault.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ifadit.errors import ModelError

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "model_card.json"

Precision = torch.dtype | Mapping[str, torch.dtype]
"""How a weights file stores its tensors: one dtype for all, or one per tensor name (a mixed copy)."""


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


def write_model_folder(
    folder: Path,
    tensors: dict[str, torch.Tensor],
    kind: str,
    name: str,
    fields: dict[str, Any],
    card: dict[str, Any] | None = None,
) -> str:
    """Write a model folder and return its model id: `tensors` to model.safetensors (temporary file + rename),
    config.json = kind, name, model id, sha256 and `fields`; `card` (when given) to model_card.json."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{WEIGHTS_FILE}.tmp"
    save_file(tensors, str(tmp), metadata={"kind": kind})
    os.replace(tmp, folder / WEIGHTS_FILE)
    digest = sha256_file(folder / WEIGHTS_FILE)
    mid = model_id(name, digest)
    write_json(
        folder / CONFIG_FILE, {"kind": kind, "name": name, "model_id": mid, "sha256": digest, **fields}
    )
    if card is not None:
        write_json(folder / CARD_FILE, {**card, "model_id": mid, "sha256": digest})  # these weights, always
    return mid


def cpu_tensors(
    state: dict[str, torch.Tensor], dtype: Precision = torch.float32, skip: str | None = None
) -> dict[str, torch.Tensor]:
    """`state` as contiguous CPU tensors of `dtype` (one for all, or one per name), without the keys that start
    with `skip`."""
    return {
        k: v.detach().to("cpu", dtype if isinstance(dtype, torch.dtype) else dtype[k]).contiguous()
        for k, v in state.items()
        if skip is None or not k.startswith(skip)
    }


def read_model_config(folder: Path, kind: str, hint: str) -> dict[str, Any]:
    """The parsed config.json of a model folder of `kind`; ModelError names the missing or malformed file
    (`hint` goes with a missing one)."""
    path = Path(folder) / CONFIG_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"{path}: missing", hint=hint) from None
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or data.get("kind") != kind or "config" not in data:
        article = "an" if kind[0] in "aeiou" else "a"
        raise ModelError(f"{path}: not {article} {kind} config")
    return data


def checked_weights(
    folder: Path,
    data: dict[str, Any],
    expected_sha256: str | None,
    missing_hint: str | None = None,
    what: str = "model",
) -> tuple[Path, str]:
    """(weights path, sha256) of a model folder whose config.json is `data`, after checking the sha256
    against config.json and `expected_sha256`; ModelError when the file is missing or differs."""
    weights = Path(folder) / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelError(f"{weights}: missing", hint=missing_hint)
    digest = sha256_file(weights)
    for label, want in (("config.json", data.get("sha256")), ("expected", expected_sha256)):
        if want is not None and want != digest:
            raise ModelError(
                f"{weights}: sha256 {digest[:12]}... does not match the {label} value {str(want)[:12]}...",
                hint=f"the file is corrupt or was replaced; fetch the {what} again",
            )
    return weights, digest


def load_weights(model: nn.Module, weights: Path, folder: Path, skip: str) -> None:
    """Load `weights` into `model`; every tensor must fit except those starting with `skip` (not stored)."""
    try:
        missing, unexpected = model.load_state_dict(load_file(str(weights)), strict=False)
    except (RuntimeError, SafetensorError) as exc:
        raise ModelError(f"{folder}: weights do not match the architecture in config.json: {exc}") from None
    missing = [k for k in missing if not k.startswith(skip)]
    if missing or unexpected:
        raise ModelError(f"{weights}: missing tensors {missing[:3]}, unexpected tensors {unexpected[:3]}")
