"""Training-data check: is the evaluation set one a model was trained on? (Its figures would be flattering.)

A model card (`model_card.json` beside the weights) may list its training data as `training_data`: folders or
files, as given to the trainer. An evaluation folder overlaps when it is one of them, lies inside one, or
contains one.
"""

from __future__ import annotations

import json
from pathlib import Path

from ifadit.errors import ModelError

CARD_KEY = "training_data"


def training_data(card: Path) -> list[Path]:
    """The training folders/files a model card lists (empty when the card lists none)."""
    try:
        data = json.loads(card.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{card}: unreadable model card ({exc})", hint="re-save the model folder") from None
    listed = data.get(CARD_KEY, []) if isinstance(data, dict) else []
    if not isinstance(listed, list) or not all(isinstance(p, str) for p in listed):
        raise ModelError(
            f"{card}: {CARD_KEY!r} must be a list of paths", hint="fix or re-save the model card"
        )
    return [Path(p) for p in listed]


def overlaps(data: Path, training: list[Path]) -> list[Path]:
    """The training paths that are `data`, contain it or lie inside it (compared after resolving)."""
    target = data.resolve()
    found = []
    for path in training:
        source = path.resolve()
        if source == target or source in target.parents or target in source.parents:
            found.append(path)
    return found


def training_warning(card: Path | None, data: Path) -> str | None:
    """A warning naming the overlap when `card` lists training data that overlaps `data`, else None."""
    if card is None or not card.is_file():
        return None
    found = overlaps(data, training_data(card))
    if not found:
        return None
    return (
        f"{data} overlaps the training data of {card.parent.name} ({', '.join(map(str, found))}): "
        "figures on training images overstate anonymity and recovery"
    )
