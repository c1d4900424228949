"""`ifadit anonymize` and `ifadit eval` with --backend reverse-personalization on the tiny SDXL folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ifadit.media.image import read_image, write_image
from ifadit.media.manifest import read_manifest
from ifadit_cli.main import cli
from tests.pipeline.support import CASE, Lab, make_lab

BACKEND = "reverse-personalization"


@pytest.fixture
def photo(tmp_path: Path, astronaut: np.ndarray) -> Path:
    write_image(tmp_path / "astronaut.png", astronaut)
    return tmp_path / "astronaut.png"


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return make_lab(tmp_path)


def test_anonymize_with_options_replaces_the_face(
    lab: Lab, tmp_path: Path, photo: Path, astronaut: np.ndarray, sdxl_dir: Path
) -> None:
    outputs = []
    for name, extra in (("plain", ()), ("elderly", ("--attributes", "an elderly man")), ("again", ())):
        done = lab.cli(
            "anonymize",
            photo,
            "-o",
            tmp_path / f"{name}.png",
            "--case",
            CASE,
            "--backend",
            BACKEND,
            "--model-dir",
            sdxl_dir,
            "--identity-scale",
            "-6",
            "--steps",
            "4",
            *extra,
            "--json",
        )
        assert done.exit_code == 0, done.stderr
        summary = json.loads(done.stdout)
        assert summary["backend"] == BACKEND and summary["faces"] == 1
        outputs.append(read_image(tmp_path / f"{name}.png"))
    plain, elderly, again = outputs
    changed = np.any(plain != astronaut, axis=2)
    assert 500 < changed.sum() < 0.1 * changed.size  # the face region only
    assert not np.array_equal(plain, elderly) and np.array_equal(plain, again)
    manifest = read_manifest(tmp_path / "plain.png")
    assert manifest is not None and manifest.backend == BACKEND and len(manifest.faces) == 1
    assert (
        manifest.model_sha256 is not None
        and manifest.model_id == f"sdxl-identity-{manifest.model_sha256[:12]}"
    )


def test_anonymize_errors_are_one_line(lab: Lab, tmp_path: Path, photo: Path, sdxl_dir: Path) -> None:
    missing = lab.cli(
        "anonymize",
        photo,
        "-o",
        tmp_path / "out.png",
        "--backend",
        BACKEND,
        "--model-dir",
        tmp_path / "nowhere",
    )
    assert missing.exit_code == 1 and missing.stderr.count("\n") == 1
    assert (
        f"Error: reverse-personalization model folder {tmp_path / 'nowhere'} does not exist" in missing.stderr
    )
    wrong = lab.cli(
        "anonymize", photo, "-o", tmp_path / "out.png", "--backend", "blur", "--identity-scale", "-6"
    )
    assert wrong.exit_code == 2 and "backend 'blur' has no option identity_scale" in wrong.stderr
    assert not (tmp_path / "out.png").exists()


def test_eval_reports_the_backend_beside_blur(shared_dir: Path, tmp_path: Path, sdxl_dir: Path) -> None:
    data = shared_dir / "data" / "reid" / "dlib-johns"
    out = tmp_path / "report"
    args = [
        "eval",
        "--data",
        str(data),
        "--backend",
        "blur",
        "--backend",
        BACKEND,
        "--recognizer",
        "dlib",
        "--limit",
        "4",
        "--random-keys",
        "1",
        "--model-dir",
        f"{BACKEND}={sdxl_dir}",
        "-o",
        str(out),
    ]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    rows = {row["backend"]: row for row in metrics["backends"]}
    assert set(rows) == {"blur", BACKEND} and rows[BACKEND]["reversible_metrics"] is None
    assert 0.0 <= rows[BACKEND]["anonymity"][0]["verification"] <= 1.0
    assert BACKEND in (out / "report.md").read_text() and BACKEND in result.stdout


def test_eval_model_dir_for_a_backend_not_evaluated_is_a_usage_error(tmp_path: Path, sdxl_dir: Path) -> None:
    args = [
        "eval",
        "--data",
        str(tmp_path),
        "--backend",
        "blur",
        "--model-dir",
        f"{BACKEND}={sdxl_dir}",
        "-o",
        str(tmp_path / "out"),
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "--model-dir names reverse-personalization" in result.output


def test_restore_says_not_reversible_without_loading_the_model(
    lab: Lab,
    tmp_path: Path,
    photo: Path,
    astronaut: np.ndarray,
    sdxl_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lab.require_approval(False)
    done = lab.cli(
        "anonymize",
        photo,
        "-o",
        tmp_path / "out.png",
        "--case",
        CASE,
        "--backend",
        BACKEND,
        "--model-dir",
        sdxl_dir,
        "--steps",
        "2",
        "--seal-original",
    )
    assert done.exit_code == 0, done.stderr
    monkeypatch.delenv("IFADIT_SDXL_DIR", raising=False)  # restore has no model folder: it must not need one
    refused = lab.cli(
        "restore",
        tmp_path / "out.png",
        "-o",
        tmp_path / "back.png",
        "--case",
        CASE,
        "--reason",
        "test",
        user="ivan",
    )
    assert refused.exit_code == 1
    assert (
        "backend 'reverse-personalization' is not reversible (its sealed originals restore with --exact)"
        in (refused.stderr)
    )
    exact = lab.cli(
        "restore",
        tmp_path / "out.png",
        "-o",
        tmp_path / "back.png",
        "--case",
        CASE,
        "--reason",
        "test",
        "--exact",
        user="ivan",
    )
    assert exact.exit_code == 0, exact.stderr
    assert np.array_equal(read_image(tmp_path / "back.png"), astronaut)
