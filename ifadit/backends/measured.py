"""What a shipped model's card says it achieved on held-out faces, as the caveat a model restore prints.

`scripts/ship_ifadit.py` stores the acceptance figures of `scripts/eval_ifadit.py` in `model_card.json` under
`acceptance` ({set: [{recognizer, restored_match, random_key_match, near_key_match, ...}]}). A model restore is
an investigative lead, never an identification; the caveat says how often this model's restores verified as the
original, and how often a wrong key's did, so nobody reads more into a restored face than was measured.
"""

from __future__ import annotations

import json
from pathlib import Path

CARD_FILE = "model_card.json"


def restore_caveat(model_dir: Path, model_id: str | None, recognizer: str = "dlib") -> str:
    """One line for the terminal after a model restore by `model_id` from the model in `model_dir`."""
    lead = "a model restore is an investigative lead, not an identification"
    try:
        card = json.loads((Path(model_dir) / CARD_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return f"note: {lead}"
    if not isinstance(card, dict) or card.get("model_id") != model_id:
        return f"note: {lead}"
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
        return f"note: {lead}"
    if not right or not wrong:
        return f"note: {lead}"
    return (
        f"note: {lead}: on held-out faces this model's restores verified as the original ({recognizer}) for "
        f"{_span(right)} of faces, restores with a wrong key for {_span(wrong)} (model card)"
    )


def _span(values: list[float]) -> str:
    low, high = values[0], values[-1]
    return f"{low:.0%}" if round(low, 2) == round(high, 2) else f"{low:.0%}-{high:.0%}"
