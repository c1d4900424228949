"""Ship a finished model folder: copy it into the pretrained root under its name and record it in the index.

A folder ships only whole and consistent: config.json, the weights whose sha256 config.json records, the
model card (`MODEL_CARD.md` for people, `model_card.json` for `ifadit restore` and `ifadit eval`) measured on
these very weights, and the optional sample grid. The copy is staged beside the target and renamed into place,
so a reader never sees half a model; the index entry (`pretrained_index.record_shipped`) then pins every
file's sha256 for `ifadit models verify`. Writing the card from a run's measurements stays research
(`scripts/ship_*.py`, scripts/README.md); this is the step every model shares.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ifadit.errors import ModelError
from ifadit.models.model_folder import CARD_FILE, CONFIG_FILE, WEIGHTS_FILE, checked_weights
from ifadit.models.pretrained_index import CARD_MARKDOWN, record_shipped

REQUIRED = (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE, CARD_MARKDOWN)
OPTIONAL = ("samples.png",)


def check_shippable(source: Path) -> str:
    """The model id of `source` once it is complete and its card belongs to its weights; else `ModelError`."""
    absent = [name for name in REQUIRED if not (source / name).is_file()]
    if absent:
        raise ModelError(
            f"{source}: {', '.join(absent)} missing",
            hint="a shipped model needs its config, weights and model card (scripts/README.md: card writers)",
        )
    config = json.loads((source / CONFIG_FILE).read_text())
    checked_weights(source, config, None)  # the weights are the ones config.json records
    card = json.loads((source / CARD_FILE).read_text())
    model_id = str(config.get("model_id", ""))
    if card.get("model_id") != model_id:
        raise ModelError(
            f"{source / CARD_FILE}: measured on {card.get('model_id')!r}, not on these weights ({model_id})",
            hint="measure the weights you ship (a float16 copy has a new model id)",
        )
    return model_id


def ship_model(source: Path, pretrained: Path, name: str) -> str:
    """Copy model folder `source` to `pretrained/<name>` (replacing it) and record it in the index; the model
    id shipped."""
    model_id = check_shippable(source)
    target = pretrained / name
    staging = pretrained / f".{name}.{os.getpid()}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for file in (*REQUIRED, *OPTIONAL):
        if (source / file).is_file():
            shutil.copy2(source / file, staging / file)
    retired = pretrained / f".{name}.{os.getpid()}.old"
    if target.exists():
        target.rename(retired)
    staging.rename(target)
    shutil.rmtree(retired, ignore_errors=True)
    record_shipped(pretrained, name, model_id)
    return model_id
