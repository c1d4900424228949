"""`--detector insightface` through click's runner: `ifadit detect` and `ifadit anonymize` on a model pack
built in the test (`tests.insightface_support`), the environment default, and the errors a user sees."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner, Result

from ifadit.faces.insightface_adapter import PACK_ENV
from ifadit.media.image import write_image
from ifadit_cli.main import cli
from tests.conftest import REPO_ROOT
from tests.insightface_support import EXPORT_WARNINGS, build_pack
from tests.pipeline.support import CASE, make_lab

pytest.importorskip("onnx", reason="the [insightface] extra (onnx, onnxruntime) is not installed")
pytest.importorskip("onnxruntime", reason="the [insightface] extra (onnx, onnxruntime) is not installed")
pytestmark = pytest.mark.filterwarnings(*EXPORT_WARNINGS)

# The stand-in detector's fixed outputs on a 320x240 image (scale 0.5 into its 160 px input): two faces.
BOXES = [[128.0, 80.0, 256.0, 240.0], [32.0, 32.0, 96.0, 96.0]]
SCORES = [0.9, 0.8]


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_pack(tmp_path_factory.mktemp("buffalo_l"))


@pytest.fixture
def photo(tmp_path: Path, astronaut: np.ndarray) -> Path:
    return write_image(tmp_path / "astronaut.png", cv2.resize(astronaut, (320, 320))[40:280])


def detect(*args: object, pack_env: str | None = None) -> Result:
    runner = CliRunner(env={PACK_ENV: pack_env})  # None: unset for the run
    return runner.invoke(cli, ["detect", *map(str, args)], catch_exceptions=False)


def test_detect_json_with_the_pack(pack: Path, photo: Path) -> None:
    result = detect(photo, "--detector", "insightface", "--insightface-pack", pack, "--json")
    assert result.exit_code == 0, result.stderr
    (record,) = json.loads(result.stdout)
    assert (record["file"], record["width"], record["height"]) == (str(photo), 320, 240)
    assert [face["score"] for face in record["faces"]] == SCORES
    for face, box in zip(record["faces"], BOXES, strict=True):
        np.testing.assert_allclose(face["box"], box, atol=0.01)
        assert len(face["landmarks"]) == 5
    assert result.stderr == ""


def test_detect_takes_the_pack_from_the_environment(pack: Path, photo: Path) -> None:
    result = detect(photo, "--detector", "insightface", "--thresh", "0.85", "--json", pack_env=str(pack))
    assert result.exit_code == 0, result.stderr
    assert [face["score"] for face in json.loads(result.stdout)[0]["faces"]] == [0.9]


def test_detect_errors_name_what_is_missing(pack: Path, photo: Path, tmp_path: Path) -> None:
    missing = detect(photo, "--detector", "insightface")
    assert missing.exit_code == 1 and missing.stdout == ""
    assert missing.stderr.startswith("Error: insightface needs a model-pack folder and none was given (pass ")
    absent = detect(photo, "--detector", "insightface", "--insightface-pack", tmp_path / "absent")
    assert absent.exit_code == 1
    assert f"Error: {tmp_path / 'absent'}: model-pack folder not found" in absent.stderr
    wrong = detect(photo, "--insightface-pack", pack)  # the default hog detector takes no pack
    assert (
        wrong.exit_code == 2 and "--insightface-pack applies to --detector insightface only" in wrong.stderr
    )
    upsample = detect(photo, "--detector", "insightface", "--insightface-pack", pack, "--upsample", "1")
    assert upsample.exit_code == 2 and "upsample applies to the dlib detectors" in upsample.stderr


def test_anonymize_with_the_insightface_detector(
    pack: Path, photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PACK_ENV, raising=False)
    lab = make_lab(tmp_path)
    done = lab.cli(
        "anonymize",
        photo,
        "-o",
        tmp_path / "out",
        "--case",
        CASE,
        "--backend",
        "blur",
        "--detector",
        "insightface",
        "--insightface-pack",
        pack,
        "--json",
    )
    assert done.exit_code == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["faces"] == 2 and (tmp_path / "out" / "astronaut.png").is_file()
    refused = lab.cli(
        "anonymize",
        photo,
        "-o",
        tmp_path / "out2",
        "--case",
        CASE,
        "--backend",
        "blur",
        "--insightface-pack",
        pack,
    )
    assert refused.exit_code == 2 and "applies to the insightface detector only, not 'hog'" in refused.stderr
    assert not (tmp_path / "out2").exists()


def test_default_imports_do_not_load_onnxruntime() -> None:
    code = (
        "import sys, ifadit.faces.detect, ifadit.faces.recognize, ifadit_cli.detect, ifadit_cli.anonymize\n"
        "print(sorted({'onnx', 'onnxruntime', 'ifadit.faces.insightface_adapter'} & set(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
