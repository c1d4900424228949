"""What a shipped model's card says it achieved on held-out faces, as the caveat a model restore prints.

`scripts/ship_ifadit.py` stores the acceptance figures of `scripts/eval_ifadit.py` in `model_card.json` under
`acceptance` ({set: [{recognizer, restored_match, random_key_match, near_key_match, ...}]}). A model restore is
an investigative lead, never an identification; the caveat says how often this model's restores verified as the
original, and how often a wrong key's did, so nobody reads more into a restored face than was measured.
`measured_rates` gives the same figures as data, for the restore report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CARD_FILE = "model_card.json"
LEAD = "a model restore is an investigative lead, not an identification"


def measured_rates(model_dir: Path, model_id: str | None, recognizer: str = "dlib") -> dict[str, Any] | None:
    """The card's held-out rates for `model_id` as {recognizer, restored_match, wrong_key_match} ([low, high]
    fractions over its evaluation sets), or None when the model in `model_dir` is another or measured nothing."""
    try:
        card = json.loads((Path(model_dir) / CARD_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(card, dict) or card.get("model_id") != model_id:
        return None
    rows = [
        row
        for set_rows in (card.get("acceptance") or {}).values()
        if isinstance(set_rows, list)
        for row in set_rows
        if isinstance(row, dict) and row.get("recognizer") == recognizer
    ]
    try:
        right = sorted(float(row["restored_match"]) for row in rows)
        wrong = sorted(float(row[k]) for row in rows for k in ("random_key_match", "near_key_match"))
    except (KeyError, TypeError, ValueError):
        return None
    if not right or not wrong:
        return None
    return {
        "recognizer": recognizer,
        "restored_match": [right[0], right[-1]],
        "wrong_key_match": [wrong[0], wrong[-1]],
        "source": CARD_FILE,
    }


def restore_caveat(rates: dict[str, Any] | None) -> str:
    """One line for the terminal after a model restore, from the rates `measured_rates` gave (None: none)."""
    if rates is None:
        return f"note: {LEAD}"
    return (
        f"note: {LEAD}: on held-out faces this model's restores verified as the original ({rates['recognizer']}) "
        f"for {_span(rates['restored_match'])} of faces, restores with a wrong key for "
        f"{_span(rates['wrong_key_match'])} (model card)"
    )


def _span(values: list[float]) -> str:
    low, high = values[0], values[-1]
    return f"{low:.0%}" if round(low, 2) == round(high, 2) else f"{low:.0%}-{high:.0%}"
