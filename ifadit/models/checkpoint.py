"""Generator checkpoints: `model.safetensors` + `config.json` (+ optional `model_card.json`), sha256-checked.

A checkpoint folder holds the weights in safetensors (no code runs on load), the architecture config, the
sha256 of the weights file and the model id `<name>-<sha256[:12]>` that outputs and manifests cite.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from ifadit.errors import ModelError
from ifadit.faces.identity import TORCH_DLIB
from ifadit.models.dlib_resnet import DAT_NAME, load_dlib_resnet, models_dir
from ifadit.models.stylegan2.networks import Generator, GeneratorConfig

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "model_card.json"
GENERATOR_KIND = "stylegan2-generator"

Precision = torch.dtype | Mapping[str, torch.dtype]
"""How a weights file stores its tensors: one dtype for all, or one per tensor name (a mixed copy)."""


class RecognizerConfig(Protocol):
    """The config of a model built around a recognizer: names it, and serialises."""

    @property
    def recognizer(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


C = TypeVar("C", bound=RecognizerConfig)
M = TypeVar("M", bound=nn.Module)
RECOGNIZER_PREFIX = "recognizer."  # tensors of a model's recognizer, not stored in its folder


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def stored_dtypes(weights: Path) -> dict[str, torch.dtype]:
    """The precision of each tensor a weights file stores (a shipped copy keeps them, so its model id stays the
    measured one)."""
    with safe_open(str(weights), "pt") as tensors:
        return {name: tensors.get_tensor(name).dtype for name in tensors.keys()}  # noqa: SIM118 (safe_open is not a dict)


def float16_except(model: nn.Module, keep_float32: Sequence[str]) -> dict[str, torch.dtype]:
    """A per-tensor precision for `model`: float16, float32 for the tensors whose names start with one of
    `keep_float32`. A prefix that names no tensor raises ValueError (a typo would round the flow silently)."""
    names = list(model.state_dict())
    for prefix in keep_float32:
        if not any(name.startswith(prefix) for name in names):
            raise ValueError(f"no tensor of the model starts with {prefix!r}")
    return {name: torch.float32 if name.startswith(tuple(keep_float32)) else torch.float16 for name in names}


def round_to_precision(model: nn.Module, dtypes: Mapping[str, torch.dtype]) -> None:
    """Round `model`'s tensors in place to the precision `dtypes` will store them at, so that what is measured or
    fitted on the model is what its saved copy computes (the recognizer, never stored, is left alone)."""
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not name.startswith(RECOGNIZER_PREFIX) and tensor.is_floating_point() and name in dtypes:
                tensor.copy_(tensor.to(dtypes[name]))


def precision_label(dtypes: Mapping[str, torch.dtype]) -> str:
    """'float16' for a file stored in one precision; 'float16 + float32 (prefixes)' for a mixed one, naming the
    top-level modules stored in the less common precision."""
    counts: dict[torch.dtype, int] = {}
    for dtype in dtypes.values():
        counts[dtype] = counts.get(dtype, 0) + 1
    names = [
        str(dtype).removeprefix("torch.") for dtype in sorted(counts, key=counts.__getitem__, reverse=True)
    ]
    if len(names) == 1:
        return names[0]
    rare = min(counts, key=counts.__getitem__)
    modules = sorted({name.split(".")[0] for name, dtype in dtypes.items() if dtype == rare})
    return f"{' + '.join(names)} ({str(rare).removeprefix('torch.')}: {', '.join(modules)})"


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


def recognizer_sha256(recognizer: str) -> str | None:
    """sha256 of the built-in recognizer's weights file when `recognizer` names it, else None."""
    return sha256_file(models_dir() / DAT_NAME) if recognizer == TORCH_DLIB else None


def built_in_recognizer(recognizer: str, folder: Path, data: dict[str, Any]) -> nn.Module:
    """The recognizer a model folder names (only the built-in one loads), checked against the sha256 its
    config.json (`data`) recorded."""
    if recognizer != TORCH_DLIB:
        raise ModelError(f"{folder}: recognizer {recognizer!r} is not built in; pass the recognizer module")
    dat = models_dir() / DAT_NAME
    want = data.get("recognizer_sha256")
    if want is not None and sha256_file(dat) != want:
        raise ModelError(f"{dat}: sha256 differs from the one this model was trained with ({want[:12]}...)")
    return load_dlib_resnet(dat)


def load_weights(model: nn.Module, weights: Path, folder: Path, skip: str) -> None:
    """Load `weights` into `model`; every tensor must fit except those starting with `skip` (not stored)."""
    try:
        missing, unexpected = model.load_state_dict(load_file(str(weights)), strict=False)
    except (RuntimeError, SafetensorError) as exc:
        raise ModelError(f"{folder}: weights do not match the architecture in config.json: {exc}") from None
    missing = [k for k in missing if not k.startswith(skip)]
    if missing or unexpected:
        raise ModelError(f"{weights}: missing tensors {missing[:3]}, unexpected tensors {unexpected[:3]}")


def save_recognizer_model(
    model: nn.Module,
    config: RecognizerConfig,
    folder: Path,
    kind: str,
    name: str,
    card: dict[str, Any] | None = None,
    dtype: Precision = torch.float32,
) -> str:
    """Write a model built around a recognizer (its `config` names it; its weights are not stored, the
    built-in one's sha256 is) to `folder` and return its model id. `dtype` is the stored precision, one or per
    tensor (the loader copies the tensors into the model's float32 parameters)."""
    fields = {"recognizer_sha256": recognizer_sha256(config.recognizer), "config": config.to_dict()}
    tensors = cpu_tensors(model.state_dict(), dtype=dtype, skip=RECOGNIZER_PREFIX)
    return write_model_folder(folder, tensors, kind, name, fields, card)


def load_recognizer_model(
    folder: Path,
    kind: str,
    label: str,
    parse: Callable[[dict[str, Any]], C],
    build: Callable[[C, nn.Module], M],
    recognizer: nn.Module | None,
    expected_sha256: str | None,
) -> tuple[M, str, str]:
    """Load a folder written by `save_recognizer_model` after checking sha256s: `parse` reads its config,
    `build(config, recognizer)` makes the network (`recognizer` None: the built-in one the folder names);
    returns (model in eval mode, model id, weights sha256). `label` names the model in messages; the
    model id's name defaults to `kind` without its '-model' suffix."""
    folder = Path(folder)
    data = read_model_config(
        folder, kind, hint=f"an {label} model folder holds {WEIGHTS_FILE} and {CONFIG_FILE}"
    )
    weights, digest = checked_weights(
        folder, data, expected_sha256, missing_hint=f"{CONFIG_FILE} is there but the weights are not"
    )
    try:
        config = parse(data["config"])
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelError(f"{folder / CONFIG_FILE}: not a valid {label} config ({exc})") from None
    if recognizer is None:
        recognizer = built_in_recognizer(config.recognizer, folder, data)
    model = build(config, recognizer)
    load_weights(model, weights, folder, RECOGNIZER_PREFIX)
    return model.eval(), model_id(str(data.get("name", kind.removesuffix("-model"))), digest), digest


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
