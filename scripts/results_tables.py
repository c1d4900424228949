"""Print the docs/results.md tables of `ifadit eval` reports, straight from their metrics.json files.

    python scripts/results_tables.py runs/eval/all-dlib-johns/metrics.json runs/eval/all-deepface/metrics.json

Per report: a heading naming the set, its faces and identities; the anonymity/utility/speed table (one row per
backend, the model id beside model backends); then, for reversible backends, the keys/recovery/attacks table
per recognizer. Copying printed figures by hand is where transcription errors come from: this prints them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ifadit.eval.report import REVERSIBLE_COLUMNS


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def backend_label(metrics: dict[str, Any]) -> str:
    model = metrics.get("model_id")
    return f"{metrics['backend']} (`{model}`)" if model else metrics["backend"]


def headline(document: dict[str, Any]) -> str:
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("metrics", type=Path, nargs="+", help="metrics.json files written by `ifadit eval`")
    args = parser.parse_args()
    for path in args.metrics:
        document = json.loads(path.read_text())
        limit = f", {document['limit']} images spread over the set" if document.get("limit") else ""
        print(
            f"### {Path(document['data']).name}: {document['faces']} faces, {document['identities']} identities, "
            f"{len(document['missed_images'])} images without a face{limit}, seed {document['seed']}\n"
        )
        print(headline(document) + "\n")
        print(reversible(document))


if __name__ == "__main__":
    main()
