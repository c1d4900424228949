"""Write an evaluation: `metrics.json`, `report.md`, PNG plots, and the headline table printed by the CLI."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ifadit.eval.run import BackendResult

METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"
PLOTS = ("anonymity.png", "tradeoff.png", "samples.png")


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _by_recognizer(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["recognizer"]: row for row in metrics["anonymity"]}


def headline_rows(document: dict[str, Any]) -> list[list[str]]:
    """One row per backend: anonymity per recognizer, utility and speed (the table printed on stdout)."""
    names = [r["name"] for r in document["recognizers"]]
    header = ["backend"]
    for name in names:
        header += [f"{name} verif", f"{name} rank-1 (chance)"]
    header += ["NME", "yaw err", "detected", "FD", "ΔE00 skin", "grey C*", "ms/face"]
    rows = [header]
    for metrics in document["backends"]:
        anon, util = _by_recognizer(metrics), metrics["utility"]
        row = [metrics["backend"]]
        for name in names:
            a = anon[name]
            row += [_fmt(a["verification"]), f"{_fmt(a['rank1'])} ({_fmt(a['chance'])})"]
        row += [
            _fmt(util["landmark_nme"]),
            _fmt(util["yaw_error"], 1),
            f"{_fmt(util['detection_anonymized'])}/{_fmt(util['detection_original'])}",
            _fmt(util["frechet"], 4),
            _fmt(metrics["colour"]["delta_e"], 2),
            _fmt(metrics["colour"]["grey_chroma"], 2),
            _fmt(metrics["speed"]["anonymize_ms_per_face"], 2),
        ]
        rows.append(row)
    return rows


def render_table(rows: Sequence[Sequence[str]]) -> str:
    """Plain text columns."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def _markdown(rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows[1:]])


REVERSIBLE_COLUMNS = (
    ("anonymized_match", "anonymized"),
    ("restored_match", "restored"),
    ("random_key_match", "random key"),
    ("near_key_match", "1-bit-off key"),
    ("keys_differ", "keys differ"),
    ("key_diversity", "diversity"),
    ("consistency", "consistency"),
    ("identity_cosine", "id cosine"),
    ("key_search", "key search"),
    ("averaging", "averaging"),
    ("inversion", "inversion"),
)


def report_markdown(document: dict[str, Any]) -> str:
    """report.md: the set, the headline table, then per-backend details (definitions: docs/evaluation.md)."""
    out = [
        f"# Evaluation of {', '.join(b['backend'] for b in document['backends'])} on `{document['data']}`",
        "",
        f"{document['faces']} faces of {document['identities']} identities "
        f"({len(document['missed_images'])} images without a detected face); seed {document['seed']}; "
        f"{document['keys']} keys. Definitions: docs/evaluation.md.",
        "",
    ]
    out += [f"> Warning: {w}" for w in document["warnings"]]
    out += ["## Headline", "", _markdown(headline_rows(document)), ""]
    out += [
        "verif: fraction of anonymized faces that verify as their original (want ~0); rank-1: identification "
        "against a gallery of the other originals, chance beside it; NME: 68-landmark error over inter-ocular "
        "distance; detected: HOG detection rate anonymized/original; FD: Fréchet distance of faceres features; "
        "ΔE00 skin: mean CIEDE2000 between original and pasted surrogate over the replaced skin; grey C*: mean "
        "chroma C*ab of surrogates pasted into grey photos (0: grey in, grey out).",
        "",
    ]
    for metrics in document["backends"]:
        out += [f"## {metrics['backend']}", ""]
        if metrics.get("model_id"):
            out += [f"Model: `{metrics['model_id']}`.", ""]
        rows = [["recognizer", "faces", "verification", "rank-1", "rank-1 originals", "chance"]]
        rows += [
            [
                a["recognizer"],
                str(a["faces"]),
                _fmt(a["verification"]),
                _fmt(a["rank1"]),
                _fmt(a["rank1_original"]),
                _fmt(a["chance"]),
            ]
            for a in metrics["anonymity"]
        ]
        out += ["Anonymity:", "", _markdown(rows), ""]
        util = metrics["utility"]
        out += [
            f"Utility: landmark NME {_fmt(util['landmark_nme'])}, yaw error {_fmt(util['yaw_error'], 2)}°, "
            f"pitch error {_fmt(util['pitch_error'], 2)}°, detection {_fmt(util['detection_anonymized'])} "
            f"(originals {_fmt(util['detection_original'])}), Fréchet distance {_fmt(util['frechet'], 4)}.",
            "",
            f"Colour: CIEDE2000 original vs pasted surrogate over the replaced skin "
            f"{_fmt(metrics['colour']['delta_e'], 2)}; chroma C*ab of surrogates in grey photos "
            f"{_fmt(metrics['colour']['grey_chroma'], 2)}.",
            "",
        ]
        speed = metrics["speed"]
        out += [
            f"Speed: anonymize {_fmt(speed['anonymize_ms_per_face'], 2)} ms/face, "
            f"restore {_fmt(speed['restore_ms_per_face'], 2)} ms/face (crop {metrics['crop_size']} px).",
            "",
        ]
        rev = metrics["reversible_metrics"]
        if rev is not None:
            rec = rev["recovery"]
            out += [
                f"Recovery (right key, face crop): PSNR {_fmt(rec['psnr'], 2)} dB, SSIM {_fmt(rec['ssim'])}, "
                f"bit-exact {_fmt(rec['exact'])}.",
                "",
            ]
            rows = [["recognizer"] + [label for _, label in REVERSIBLE_COLUMNS]]
            rows += [
                [name] + [_fmt(r[key]) for key, _ in REVERSIBLE_COLUMNS]
                for name, r in rev["by_recognizer"].items()
            ]
            out += [
                f"Keys and attacks ({rev['wrong_keys']} wrong keys; inversion trained under "
                f"{rev['inversion_known_keys']} known keys, tested on {rev['inversion_test_faces']} unseen faces "
                "under the unseen evaluation key):",
                "",
                _markdown(rows),
                "",
            ]
    out += ["## Plots", ""] + [f"![{p}]({p})" for p in PLOTS] + [""]
    return "\n".join(out)


def _plot_anonymity(document: dict[str, Any], path: Path) -> None:
    import matplotlib.pyplot as plt

    names = [r["name"] for r in document["recognizers"]]
    backends = document["backends"]
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.5), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        x = np.arange(len(backends))
        rows = [_by_recognizer(b)[name] for b in backends]
        ax.bar(x - 0.2, [r["verification"] for r in rows], 0.4, label="verification")
        ax.bar(x + 0.2, [r["rank1"] or 0.0 for r in rows], 0.4, label="rank-1")
        chance = rows[0]["chance"]
        if chance is not None:
            ax.axhline(chance, color="k", linestyle="--", linewidth=1, label="rank-1 chance")
        ax.set_xticks(x, [b["backend"] for b in backends])
        ax.set_ylim(0, 1.05)
        ax.set_title(f"anonymity ({name}); lower is better")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


MARKERS = "osD^vP*Xph"  # one per backend, named in the legend (text labels beside points overlap)


def _privacy_axis(document: dict[str, Any]) -> tuple[str, str]:
    """The anonymity figure on the trade-off plot's y axis: rank-1 re-identification against a gallery when
    the set has identities (it shows what verification hides: blur fails verification yet is identified),
    verification against the own original otherwise. Returns (metric key, axis label)."""
    if document["backends"] and document["backends"][0]["anonymity"][0]["rank1"] is not None:
        return "rank1", "rank-1 re-identification"
    return "verification", "verification as the original"


def _plot_tradeoff(document: dict[str, Any], path: Path) -> None:
    import matplotlib.pyplot as plt

    names = [r["name"] for r in document["recognizers"]]
    key, label = _privacy_axis(document)
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        for i, metrics in enumerate(document["backends"]):
            row = _by_recognizer(metrics)[name]
            ax.scatter(
                [metrics["utility"]["landmark_nme"]],
                [row[key]],
                marker=MARKERS[i % len(MARKERS)],
                s=60,
                label=metrics["backend"],
            )
        chance = _by_recognizer(document["backends"][0])[name]["chance"] if document["backends"] else None
        if key == "rank1" and chance is not None:
            ax.axhline(chance, color="k", linestyle="--", linewidth=1, label="chance")
        ax.set_xlabel("landmark NME (utility loss; lower is better)")
        ax.set_ylabel(f"{name} {label} (lower is better)")
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(f"privacy / utility ({name})")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_samples(results: Sequence[BackendResult], path: Path) -> None:
    import matplotlib.pyplot as plt

    rows = [("original", results[0].samples["original"])]
    for result in results:
        rows += [
            (f"{result.backend} {name}", crops)
            for name, crops in result.samples.items()
            if name != "original"
        ]
    count = max(len(crops) for _, crops in rows)
    fig, axes = plt.subplots(len(rows), count, figsize=(1.2 * count, 1.3 * len(rows)), squeeze=False)
    for r, (name, crops) in enumerate(rows):
        for c in range(count):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(crops):
                ax.imshow(crops[c])
        axes[r][0].set_title(name, fontsize=7, loc="left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_report(document: dict[str, Any], results: Sequence[BackendResult], folder: Path) -> list[Path]:
    """Write metrics.json, report.md and the plots into `folder` (created); returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    folder.mkdir(parents=True, exist_ok=True)
    _atomic_write(folder / METRICS_FILE, json.dumps(document, indent=2, sort_keys=True) + "\n")
    _atomic_write(folder / REPORT_FILE, report_markdown(document))
    _plot_anonymity(document, folder / PLOTS[0])
    _plot_tradeoff(document, folder / PLOTS[1])
    _plot_samples(results, folder / PLOTS[2])
    return [folder / METRICS_FILE, folder / REPORT_FILE] + [folder / p for p in PLOTS]
