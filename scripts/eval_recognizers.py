"""Measure the recognizers on the shared re-identification sets: port fidelity, rank-1, verification.

Prints, per set (`reid/deepface`, `reid/orl`, `reid/dlib-johns`): the torch port's cosine to dlib's C++
descriptor (min/mean) and max L2 gap; rank-1 re-identification of dlib, torch-dlib and faceres; each
recognizer's threshold chosen on dlib-johns (minimum FAR + FRR) and FAR/FRR at that threshold and at the
shipped threshold on every set. faceres needs `ifadit models fetch-faceres` first.

Example:
    python scripts/eval_recognizers.py --data ../shared/data/reid --json runs/recognizers.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ifadit.eval.metrics import choose_threshold, far_frr, pair_distances, rank1
from ifadit.eval.reid import ReidSet, load_reid_set
from ifadit.faces.recognize import Recognizer
from ifadit.faces.registry import get_recognizer

SETS = ("deepface", "orl", "dlib-johns")
CALIBRATION_SET = "dlib-johns"


def port_fidelity(reference: np.ndarray, port: np.ndarray) -> dict[str, float]:
    """Cosine similarity and L2 gap between dlib's descriptors and the torch port's, face by face."""
    cos = (reference * port).sum(1) / (np.linalg.norm(reference, axis=1) * np.linalg.norm(port, axis=1))
    return {
        "min_cosine": float(cos.min()),
        "mean_cosine": float(cos.mean()),
        "max_l2": float(np.linalg.norm(reference - port, axis=1).max()),
    }


def evaluate(data: Path) -> dict:
    sets: dict[str, ReidSet] = {name: load_reid_set(data / name) for name in SETS}
    recognizers: list[Recognizer] = [get_recognizer(n) for n in ("dlib", "torch-dlib", "faceres")]
    embeddings = {(r.name, s): r.embed(sets[s].crops) for r in recognizers for s in SETS}
    report: dict = {"sets": {s: {"faces": len(sets[s].labels), "missed": len(sets[s].missed)} for s in SETS}}
    report["fidelity"] = {s: port_fidelity(embeddings["dlib", s], embeddings["torch-dlib", s]) for s in SETS}
    report["rank1"] = {
        r.name: {s: rank1(embeddings[r.name, s], sets[s].labels, r.metric) for s in SETS} for r in recognizers
    }
    report["verification"] = {}
    for r in recognizers:
        pairs = {s: pair_distances(embeddings[r.name, s], sets[s].labels, r.metric) for s in SETS}
        chosen = choose_threshold(*pairs[CALIBRATION_SET])
        report["verification"][r.name] = {
            "metric": r.metric,
            "chosen_on": CALIBRATION_SET,
            "chosen_threshold": chosen,
            "shipped_threshold": r.threshold,
            "far_frr_at_chosen": {s: far_frr(*pairs[s], chosen) for s in SETS},
            "far_frr_at_shipped": {s: far_frr(*pairs[s], r.threshold) for s in SETS},
        }
    return report


def render(report: dict) -> str:
    lines = ["set          faces missed  min cos  mean cos  max L2  (torch-dlib vs dlib)"]
    for s, f in report["fidelity"].items():
        info = report["sets"][s]
        lines.append(
            f"{s:12} {info['faces']:5} {info['missed']:6}  {f['min_cosine']:.7f} {f['mean_cosine']:.7f}"
            f"  {f['max_l2']:.2e}"
        )
    lines.append("rank-1       " + "  ".join(f"{s:>10}" for s in SETS))
    for name, by_set in report["rank1"].items():
        lines.append(f"{name:12} " + "  ".join(f"{by_set[s]:10.4f}" for s in SETS))
    for name, v in report["verification"].items():
        lines.append(
            f"{name}: {v['metric']} distance threshold chosen on {v['chosen_on']} = {v['chosen_threshold']:.4f} "
            f"(shipped {v['shipped_threshold']:.4f})"
        )
        for key in ("far_frr_at_chosen", "far_frr_at_shipped"):
            cells = ", ".join(f"{s} FAR {far:.4f} FRR {frr:.4f}" for s, (far, frr) in v[key].items())
            lines.append(f"  {key[8:]:10} {cells}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=Path("../shared/data/reid"), help="folder holding the sets"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    missing = [s for s in SETS if not (args.data / s).is_dir()]
    if missing:
        print(f"Error: {args.data}: sets {', '.join(missing)} not found", file=sys.stderr)
        return 1
    report = evaluate(args.data)
    print(render(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
