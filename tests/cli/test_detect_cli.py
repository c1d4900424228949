"""`ifadit detect` end to end through click: tables, JSON, previews, bad files, --require-face."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image
from skimage import data

from ifadit.pipeline.detect import BOX_COLOUR
from ifadit_cli.main import cli


@pytest.fixture()
def files(tmp_path: Path, astronaut: np.ndarray) -> dict[str, Path]:
    paths = {
        "face": tmp_path / "astronaut.png",
        "noface": tmp_path / "coffee.jpg",
        "text": tmp_path / "notes.png",
        "empty": tmp_path / "empty.jpg",
    }
    Image.fromarray(astronaut).save(paths["face"])
    Image.fromarray(data.coffee()).save(paths["noface"], quality=95)
    paths["text"].write_text("not an image\n")
    paths["empty"].write_bytes(b"")
    return paths


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["detect", *args], catch_exceptions=False)


def test_table_output(files: dict[str, Path]) -> None:
    result = run(str(files["face"]), str(files["noface"]))
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{files['face']}: 1 face (512x512)"
    assert "score" in lines[1] and "landmarks" in lines[1]
    x0, y0, x1, y1 = (float(v) for v in lines[2].split()[1:5])
    assert abs(x0 - 175) < 10 and abs(y0 - 76) < 10 and abs(x1 - 265) < 10 and abs(y1 - 166) < 10
    assert f"{files['noface']}: 0 faces (600x400)" in lines
    assert result.stderr == ""


def test_json_output(files: dict[str, Path]) -> None:
    result = run("--json", str(files["face"]), str(files["noface"]))
    assert result.exit_code == 0
    records = json.loads(result.stdout)
    assert [r["file"] for r in records] == [str(files["face"]), str(files["noface"])]
    face = records[0]["faces"][0]
    assert len(face["box"]) == 4 and len(face["landmarks"]) == 5 and face["score"] > 1
    assert records[1]["faces"] == [] and records[0]["preview"] is None


def test_no_face_is_an_error_only_with_require_face(files: dict[str, Path]) -> None:
    result = run("--require-face", str(files["noface"]))
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: {files['noface']}: no face found (lower --thresh, raise --upsample or try --detector cnn)"
    ]
    assert run("--require-face", str(files["face"])).exit_code == 0


def test_bad_files_are_reported_and_the_rest_processed(files: dict[str, Path], tmp_path: Path) -> None:
    missing = tmp_path / "missing.png"
    result = run(str(files["text"]), str(files["face"]), str(files["empty"]), str(missing))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"Error: {files['text']}: not a recognised image file",
        f"Error: {files['empty']}: empty file (0 bytes)",
        f"Error: {missing}: no such file",
    ]
    assert f"{files['face']}: 1 face (512x512)" in result.stdout


def test_json_lists_errors_too(files: dict[str, Path]) -> None:
    result = run("--json", str(files["face"]), str(files["text"]))
    assert result.exit_code == 1
    records = json.loads(result.stdout)
    assert records[1] == {
        "file": str(files["text"]),
        "error": f"{files['text']}: not a recognised image file",
    }


def test_decompression_bomb_limit(files: dict[str, Path]) -> None:
    result = run("--max-pixels", "100000", str(files["face"]))
    assert result.exit_code == 1
    assert "image is 512x512 = 262,144 pixels, over the limit of 100,000" in result.stderr


def test_preview_files(files: dict[str, Path], tmp_path: Path) -> None:
    previews = tmp_path / "previews" / "nested"
    result = run("--preview-dir", str(previews), str(files["face"]), str(files["noface"]), str(files["text"]))
    assert result.exit_code == 1
    assert sorted(p.name for p in previews.iterdir()) == ["astronaut.png.faces.png", "coffee.jpg.faces.png"]
    drawn = np.asarray(Image.open(previews / "astronaut.png.faces.png"))
    assert drawn.shape == (512, 512, 3)
    record = json.loads(run("--json", str(files["face"])).stdout)[0]["faces"][0]
    x0, y0, _, y1 = (int(round(v)) for v in record["box"])
    assert (drawn[y0 + 5 : y1 - 5, x0] == BOX_COLOUR).all()  # the box's left edge
    untouched = np.asarray(Image.open(previews / "coffee.jpg.faces.png"))
    assert np.abs(untouched.astype(int) - np.asarray(Image.open(files["noface"]))).max() == 0


def test_detector_thresh_scale_options(files: dict[str, Path]) -> None:
    cnn = json.loads(run("--json", "--detector", "cnn", str(files["face"])).stdout)[0]
    assert len(cnn["faces"]) == 1
    strict = json.loads(run("--json", "--thresh", "5", str(files["face"])).stdout)[0]
    assert strict["faces"] == []
    scaled = json.loads(run("--json", "--scale", "640x640", str(files["face"])).stdout)[0]
    assert len(scaled["faces"]) == 1 and scaled["width"] == 512
    two = json.loads(run("--json", "--upsample", "1", str(files["face"])).stdout)[0]
    assert len(two["faces"]) == 2  # the mission patch, see tests/faces/test_detect.py


@pytest.mark.parametrize("scale", ["640", "axb", "0x10"])
def test_bad_scale_is_a_usage_error(files: dict[str, Path], scale: str) -> None:
    result = run("--scale", scale, str(files["face"]))
    assert result.exit_code == 2
    assert "--scale" in result.stderr
