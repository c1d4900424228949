"""Load official stylegan2-ada-pytorch `.pkl` generators (`G_ema`) without running code from the pickle.

Official pickles store each network as `torch_utils.persistence._reconstruct_persistent_obj(meta)`, where
`meta` carries the module's *source code* (which NVIDIA's loader executes) and the module's `__dict__`.
Here a restricted unpickler resolves only an allowlist of globals (tensor and storage rebuilders, OrderedDict,
`dnnlib.util.EasyDict`, numpy scalars/arrays); persistent objects become inert `PersistentRecord`s whose
source is ignored. The generator's constructor arguments (`_init_kwargs`) give a `GeneratorConfig`, and the
tensors in the records' `_parameters` / `_buffers` are loaded into our `Generator` by name, strictly.
"""

from __future__ import annotations

import codecs
import io
import pickle
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
import torch._utils

from ifadit.errors import ModelError
from ifadit.models.stylegan2.networks import Generator, GeneratorConfig


@dataclass
class PersistentRecord:
    """An official persistent network as data: its class name and saved `__dict__` (never executed)."""

    class_name: str
    state: dict[str, Any]


class EasyDict(dict[str, Any]):
    """Stand-in for `dnnlib.util.EasyDict` (a plain dict with attribute access in the original)."""


class _RefusedGlobal(pickle.UnpicklingError):
    pass


def _reconstruct_persistent_obj(meta: dict[str, Any]) -> PersistentRecord:
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("state"), dict):
        raise pickle.UnpicklingError("malformed persistent object")
    return PersistentRecord(class_name=str(meta.get("class_name")), state=dict(meta["state"]))


def _load_storage(data: bytes) -> Any:
    """Storages are pickled as nested torch.save bytes: read them with torch's weights-only loader."""
    return torch.load(io.BytesIO(data), weights_only=True)


def _rebuild_parameter(data: torch.Tensor, requires_grad: bool, backward_hooks: Any) -> torch.Tensor:
    return data


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """`_codecs.encode` as protocol-2 pickles use it for bytes (latin1 only)."""
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError("_codecs.encode is allowed only for latin1 byte strings")
    return codecs.encode(text, "latin1")


def _numpy_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError("only plain numpy arrays may be rebuilt")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _numpy_scalar(dtype: np.dtype, data: Any = None) -> Any:
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise pickle.UnpicklingError("only numeric numpy scalars are allowed")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("_codecs", "encode"): _latin1_encode,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("dnnlib", "EasyDict"): EasyDict,
    ("numpy", "dtype"): np.dtype,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals in `_ALLOWED`; anything else raises before it is called."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise _RefusedGlobal(f"global {module}.{name} is not allowed") from None


def read_pickle(fh: BinaryIO, source: str = "<stream>") -> Any:
    """Unpickle an official network pickle with the allowlist; ModelError names `source` on any refusal."""
    try:
        return RestrictedUnpickler(fh).load()
    except _RefusedGlobal as exc:
        raise ModelError(
            f"{source}: refused to load: {exc}", hint="only stylegan2-ada-pytorch network pickles load"
        ) from None
    except (pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{source}: not a readable network pickle ({type(exc).__name__}: {exc})") from None


def _flatten(record: PersistentRecord, prefix: str, out: dict[str, torch.Tensor]) -> None:
    """Collect parameters and persistent buffers of a record tree under dotted names."""
    state = record.state
    skip = set(state.get("_non_persistent_buffers_set") or ())
    for group in ("_parameters", "_buffers"):
        for name, tensor in (state.get(group) or {}).items():
            if tensor is None or (group == "_buffers" and name in skip):
                continue
            if not isinstance(tensor, torch.Tensor):
                raise ModelError(f"{prefix}{name}: expected a tensor, found {type(tensor).__name__}")
            out[f"{prefix}{name}"] = tensor
    for name, child in (state.get("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, PersistentRecord):
            raise ModelError(f"{prefix}{name}: expected a network module, found {type(child).__name__}")
        _flatten(child, f"{prefix}{name}.", out)


_MAPPING_KEYS = {
    "num_layers": "mapping_layers",
    "lr_multiplier": "mapping_lr_multiplier",
    "w_avg_beta": "w_avg_beta",
}
_SYNTHESIS_KEYS = {"channel_base": "channel_base", "channel_max": "channel_max", "conv_clamp": "conv_clamp"}
_IGNORED_SYNTHESIS = {"num_fp16_res", "fp16_channels_last"}  # precision only: we run fp32


def _matches_ours(key: str, value: Any) -> bool:
    """True for synthesis options that our fixed architecture already implements (or that only set precision)."""
    if key in _IGNORED_SYNTHESIS:
        return True
    if key == "architecture":
        return value == "skip"
    if key == "resample_filter":
        return list(value) == [1, 3, 3, 1]
    return False


def config_from_init_kwargs(kwargs: dict[str, Any], source: str = "<pickle>") -> GeneratorConfig:
    """Map an official Generator's constructor arguments onto a GeneratorConfig (refusing what we lack)."""
    fields: dict[str, Any] = {}
    for key in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels"):
        if key not in kwargs:
            raise ModelError(f"{source}: G_ema constructor arguments lack {key!r}")
        fields[key] = int(kwargs[key])
    unsupported: list[str] = []
    for key, value in dict(kwargs.get("mapping_kwargs") or {}).items():
        if key in _MAPPING_KEYS:
            fields[_MAPPING_KEYS[key]] = value
        elif not (key == "activation" and value == "lrelu"):
            unsupported.append(f"mapping_kwargs.{key}={value!r}")
    for key, value in dict(kwargs.get("synthesis_kwargs") or {}).items():
        if key in _SYNTHESIS_KEYS:
            fields[_SYNTHESIS_KEYS[key]] = value
        elif not _matches_ours(key, value):
            unsupported.append(f"synthesis_kwargs.{key}={value!r}")
    if unsupported:
        raise ModelError(f"{source}: unsupported generator options {unsupported}")
    try:
        return GeneratorConfig(**fields)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{source}: invalid generator options: {exc}") from None


def generator_from_record(record: PersistentRecord, source: str = "<pickle>") -> Generator:
    """Build our Generator from an official `Generator` record and load its tensors strictly."""
    if record.class_name != "Generator":
        raise ModelError(f"{source}: G_ema is a {record.class_name}, not a Generator")
    config = config_from_init_kwargs(dict(record.state.get("_init_kwargs") or {}), source)
    tensors: dict[str, torch.Tensor] = {}
    _flatten(record, "", tensors)
    generator = Generator(config)
    expected = generator.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = sorted(k for k in set(expected) & set(tensors) if expected[k].shape != tensors[k].shape)
    if missing or unexpected or wrong:
        raise ModelError(
            f"{source}: G_ema does not match its architecture: missing {missing[:5]}, unexpected {unexpected[:5]},"
            f" wrong shape {wrong[:5]}"
        )
    generator.load_state_dict({k: v.to(torch.float32) for k, v in tensors.items()}, strict=True)
    return generator.eval().requires_grad_(False)


def load_official_generator(path: Path, key: str = "G_ema") -> Generator:
    """Read an official network pickle and return its `key` generator as our `Generator` (eval mode)."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = read_pickle(fh, str(path))
    except FileNotFoundError:
        raise ModelError(f"{path}: no such file") from None
    record = data.get(key) if isinstance(data, dict) else None
    if not isinstance(record, PersistentRecord):
        raise ModelError(f"{path}: no {key!r} network in the pickle")
    return generator_from_record(record, str(path))
