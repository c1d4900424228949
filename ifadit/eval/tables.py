"""The docs/results.md tables of `ifadit eval` reports, printed straight from their metrics.json documents.

Per report: a heading naming the set, its faces and identities; the anonymity/utility/speed table (one row per
backend, the model id beside model backends); then, for reversible backends, the keys/recovery/attacks table
per recognizer. Copying printed figures by hand is where transcription errors come from: this prints them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ifadit.errors import InputError
from ifadit.eval.report import REVERSIBLE_COLUMNS


def fmt(value: Any, digits: int = 3) -> str:
    """A figure as the tables print it: floats to `digits` places, None as "-"."""
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def backend_label(metrics: dict[str, Any]) -> str:
    """The backend's name, with its model id when it has one."""
    model = metrics.get("model_id")
    return f"{metrics['backend']} (`{model}`)" if model else metrics["backend"]


def headline(document: dict[str, Any]) -> str:
    """The anonymity/utility/speed table: one row per backend."""
    names = [r["name"] for r in document["recognizers"]]
    header = ["backend"]
    for name in names:
        header += [f"{name} verif", f"{name} rank-1 (chance)"]
    header += ["NME", "yaw err °", "pitch err °", "detected (orig.)", "FD", "ms/face"]
    rows = []
    for metrics in document["backends"]:
        anonymity = {a["recognizer"]: a for a in metrics["anonymity"]}
        util = metrics["utility"]
        row = [backend_label(metrics)]
        for name in names:
            a = anonymity[name]
            row += [fmt(a["verification"]), f"{fmt(a['rank1'])} ({fmt(a['chance'])})"]
        row += [
            fmt(util["landmark_nme"]),
            fmt(util["yaw_error"], 1),
            fmt(util["pitch_error"], 1),
            f"{fmt(util['detection_anonymized'])} ({fmt(util['detection_original'])})",
            fmt(util["frechet"], 1),
            fmt(metrics["speed"]["anonymize_ms_per_face"], 2),
        ]
        rows.append(row)
    return table(header, rows)


def reversible(document: dict[str, Any]) -> str:
    """Per reversible backend: its keys/recovery line and the attacks table per recognizer ("" when none)."""
    parts = []
    for metrics in document["backends"]:
        rev = metrics["reversible_metrics"]
        if rev is None:
            continue
        recovery, speed = rev["recovery"], metrics["speed"]
        rows = [
            [name] + [fmt(r.get(key)) for key, _ in REVERSIBLE_COLUMNS]
            for name, r in rev["by_recognizer"].items()
        ]
        parts += [
            f"{backend_label(metrics)}: {rev['wrong_keys']} wrong keys, {rev.get('near_keys', 1)} one-bit-off "
            f"keys; right-key restore of the face crop PSNR {fmt(recovery['psnr'], 1)} dB, SSIM "
            f"{fmt(recovery['ssim'], 2)}; restore {fmt(speed['restore_ms_per_face'], 2)} ms/face.",
            "",
            table(["recognizer"] + [label for _, label in REVERSIBLE_COLUMNS], rows),
            "",
        ]
    return "\n".join(parts)


def results_tables(document: dict[str, Any]) -> str:
    """The heading and tables of one metrics.json document, as docs/results.md holds them."""
    limit = f", {document['limit']} images spread over the set" if document.get("limit") else ""
    heading = (
        f"### {Path(document['data']).name}: {document['faces']} faces, {document['identities']} identities, "
        f"{len(document['missed_images'])} images without a face{limit}, seed {document['seed']}"
    )
    return f"{heading}\n\n{headline(document)}\n\n{reversible(document)}"


def tables_for(path: Path) -> str:
    """`results_tables` of the metrics.json at `path`; `InputError` naming the file when it is not one."""
    try:
        return results_tables(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(
            f"{path}: not a metrics.json written by `ifadit eval` ({type(exc).__name__}: {exc})"
        ) from None
