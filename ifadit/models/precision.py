"""Stored precision of model weights: float16 copies that keep chosen tensors in float32, and how to label them.

A shipped copy may store most tensors in float16 to halve its size; the tensors that must stay exact (a flow's
couplings, statistics) stay float32. `round_to_precision` makes a model in memory compute what its copy will.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn

from ifadit.models.recognizer_model import RECOGNIZER_PREFIX


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
