"""`ifadit eval tables`: the docs/results.md tables from metrics.json files; `ifadit eval --data` still runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from ifadit.eval.report import REVERSIBLE_COLUMNS
from ifadit_cli.main import cli


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, ["eval", *(str(a) for a in args)], catch_exceptions=False)


def backend(name: str, model_id: str | None, reversible: bool) -> dict[str, Any]:
    """One backend's metrics as `ifadit eval` writes them (the fields the tables read)."""
    rev = {
        "wrong_keys": 8,
        "near_keys": 2,
        "recovery": {"psnr": 31.25, "ssim": 0.91},
        "by_recognizer": {"dlib": {key: 0.5 for key, _ in REVERSIBLE_COLUMNS}},
    }
    return {
        "backend": name,
        "model_id": model_id,
        "anonymity": [{"recognizer": "dlib", "verification": 0.125, "rank1": 0.25, "chance": 0.05}],
        "utility": {
            "landmark_nme": 0.031,
            "yaw_error": 2.5,
            "pitch_error": 1.25,
            "detection_anonymized": 0.9,
            "detection_original": 1.0,
            "frechet": 12.5,
        },  # fmt: skip
        "speed": {"anonymize_ms_per_face": 3.5, "restore_ms_per_face": 4.0},
        "reversible_metrics": rev if reversible else None,
    }


def metrics_file(tmp_path: Path) -> Path:
    document = {
        "data": "../shared/data/reid/dlib-johns",
        "faces": 55,
        "identities": 11,
        "missed_images": ["a.jpg"],
        "limit": None,
        "seed": 0,
        "recognizers": [{"name": "dlib"}],
        "backends": [backend("blur", None, False), backend("ifadit", "ifadit-1381480e9bd9", True)],
    }
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(document))
    return path


def test_tables_print_the_heading_headline_and_reversible_tables(tmp_path: Path) -> None:
    printed = run("tables", metrics_file(tmp_path))
    assert printed.exit_code == 0, printed.output
    lines = printed.stdout.splitlines()
    assert lines[0] == "### dlib-johns: 55 faces, 11 identities, 1 images without a face, seed 0"
    assert lines[2].startswith("| backend | dlib verif | dlib rank-1 (chance) | NME |")
    assert lines[4] == "| blur | 0.125 | 0.250 (0.050) | 0.031 | 2.5 | 1.2 | 0.900 (1.000) | 12.5 | 3.50 |"
    assert lines[5].startswith("| ifadit (`ifadit-1381480e9bd9`) |")
    assert "ifadit (`ifadit-1381480e9bd9`): 8 wrong keys, 2 one-bit-off keys" in printed.stdout
    assert "| dlib | 0.500 |" in printed.stdout


def test_tables_name_a_file_that_is_no_metrics_json(tmp_path: Path) -> None:
    (tmp_path / "other.json").write_text("{}")
    refused = run("tables", tmp_path / "other.json")
    assert refused.exit_code == 1
    assert refused.stderr.startswith(f"Error: {tmp_path / 'other.json'}: not a metrics.json written by")


def test_plain_eval_still_runs_the_measurement() -> None:
    usage = run("--backend", "blur", "-o", "x")
    assert usage.exit_code == 2 and "Missing option '--data'" in usage.stderr
