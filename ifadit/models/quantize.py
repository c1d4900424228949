"""float16 copies of iFADIT and ID²Face model folders, so a shipped weights file stays small (under 16 MiB).

`keep_float32` prefixes keep chosen tensors in float32: the iFADIT flow amplifies the rounding of its weights
(a float16 flow gave other surrogates and other restore rates than the float32 one it was copied from), so a
model whose flow and correction were trained on a float16 base keeps them in float32 and the copy computes
exactly what was trained. The copy keeps the name, config and model card; its weights (and so its sha256 and
model id) are new, so measure the copy itself before shipping it. Loading gives float32 parameters holding the
rounded values.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ifadit.errors import ModelError
from ifadit.models.id2face.checkpoint import ID2FACE_FORMAT
from ifadit.models.ifadit.checkpoint import IFADIT_FORMAT
from ifadit.models.model_folder import CARD_FILE, CONFIG_FILE
from ifadit.models.precision import float16_except, precision_label
from ifadit.models.recognizer_model import RecognizerModelFormat

FORMATS: tuple[RecognizerModelFormat[Any, Any], ...] = (IFADIT_FORMAT, ID2FACE_FORMAT)


@dataclass(frozen=True)
class QuantizedCopy:
    """What `float16_copy` wrote."""

    source_id: str  # model id of the folder copied
    copy_id: str  # model id of the copy (new weights, new id)
    target: Path
    precision: str  # e.g. "float16" or "float16 + float32 (float32: correction, flow)"


def model_format(folder: Path) -> RecognizerModelFormat[Any, Any]:
    """The format of the model folder `folder` by its config.json kind; `ModelError` for any other folder."""
    path = folder / CONFIG_FILE
    try:
        kind = json.loads(path.read_text()).get("kind")
    except (OSError, json.JSONDecodeError, AttributeError):
        raise ModelError(f"{path}: missing or not a model config") from None
    for candidate in FORMATS:
        if candidate.kind == kind:
            return candidate
    raise ModelError(f"{path}: not an iFADIT or ID²Face model (kind {kind!r})")


def float16_copy(source: Path, target: Path, keep_float32: Sequence[str] = ()) -> QuantizedCopy:
    """Write a float16 copy of model folder `source` to `target` (created), keeping tensors whose names start
    with a `keep_float32` prefix in float32. A prefix that names no tensor raises ValueError."""
    fmt = model_format(source)
    card_path = source / CARD_FILE
    card = json.loads(card_path.read_text()) if card_path.is_file() else None
    name = str(json.loads((source / CONFIG_FILE).read_text())["name"])
    model, source_id, _ = fmt.load(source)
    dtypes = float16_except(model, keep_float32)
    copy_id = fmt.save(model, target, name=name, card=card, dtype=dtypes)
    return QuantizedCopy(source_id, copy_id, target, precision_label(dtypes))
