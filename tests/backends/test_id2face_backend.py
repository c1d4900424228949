"""The ID²Face backend on a tiny seeded model with the real torch dlib recognizer: determinism per key, refusal
to restore, and end to end through `ifadit anonymize` (real vault, real photo) and `ifadit eval`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ifadit.backends import base
from ifadit.backends.id2face import Id2FaceBackend, default_model_dir, seed_from_key
from ifadit.errors import BackendUnavailable
from ifadit.media.image import read_image, write_image
from ifadit.media.manifest import read_manifest
from ifadit.models.dlib_resnet import load_dlib_resnet
from ifadit.models.id2face import save_id2face
from tests.id2face_support import tiny_id2face
from tests.ifadit_support import RES, astronaut_crops
from tests.pipeline.support import CASE, make_lab

KEY = bytes(range(32))
OTHER = bytes(range(1, 33))


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pretrained/ folder holding a tiny id2face-64 model."""
    root = tmp_path_factory.mktemp("pretrained")
    save_id2face(tiny_id2face(recognizer=load_dlib_resnet()), root / "id2face-64", name="tiny-id2face")
    return root


@pytest.fixture(scope="module")
def backend(pretrained: Path) -> Id2FaceBackend:
    return Id2FaceBackend(model_dir=pretrained / "id2face-64")


@pytest.fixture(scope="module")
def crops(astronaut: np.ndarray) -> np.ndarray:
    return astronaut_crops(astronaut, 4)


def test_missing_weights_say_how_to_train(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IFADIT_PRETRAINED", str(tmp_path))
    assert default_model_dir() == tmp_path / "id2face-64"
    with pytest.raises(BackendUnavailable) as info:
        base.get_backend("id2face")
    message = str(info.value)
    assert str(tmp_path / "id2face-64" / "model.safetensors") in message
    assert "ifadit train id2face" in message and "\n" not in message


def test_registry_builds_it_and_the_model_id_names_the_weights(pretrained: Path) -> None:
    built = base.get_backend("id2face", model_dir=pretrained / "id2face-64")
    assert isinstance(built, Id2FaceBackend)
    assert built.name == "id2face" and not built.reversible and built.crop_size == RES
    assert built.model_id == f"tiny-id2face-{built.model_sha256[:12]}"
    assert type(built.model.recognizer).__name__ == "DlibResNet"


def test_same_face_and_key_give_identical_bytes_and_keys_differ(
    backend: Id2FaceBackend, crops: np.ndarray
) -> None:
    a = backend.anonymize_crops(crops, KEY)
    assert a.dtype == np.uint8 and a.shape == crops.shape and not np.array_equal(a, crops)
    assert a.tobytes() == backend.anonymize_crops(crops, KEY).tobytes()
    assert a[1].tobytes() == backend.anonymize_crops(crops[1:2], KEY)[0].tobytes()  # batching does not matter
    assert np.abs(a.astype(int) - backend.anonymize_crops(crops, OTHER)).mean() > 1.0
    unkeyed = backend.anonymize_crops(crops, None)  # a run without a key uses one fixed seed
    assert unkeyed.tobytes() == backend.anonymize_crops(crops, None).tobytes()
    assert np.abs(unkeyed.astype(int) - a).mean() > 1.0


def test_seed_depends_on_key_and_model() -> None:
    seed = seed_from_key(KEY, "m-1")
    assert seed == seed_from_key(KEY, "m-1") and 0 <= seed < 2**63
    assert (
        len({seed, seed_from_key(OTHER, "m-1"), seed_from_key(KEY, "m-2"), seed_from_key(None, "m-1")}) == 4
    )
    with pytest.raises(ValueError, match="key bytes"):
        seed_from_key(b"", "m-1")


def test_other_sizes_are_resized_and_restore_is_refused(
    backend: Id2FaceBackend, crops: np.ndarray, astronaut: np.ndarray
) -> None:
    big = astronaut_crops(astronaut, 2, size=2 * RES)
    assert backend.anonymize_crops(big, KEY).shape == big.shape
    with pytest.raises(BackendUnavailable, match="not reversible"):
        backend.restore_crops(crops, KEY)
    with pytest.raises(ValueError, match="uint8 crops"):
        backend.anonymize_crops(crops.astype(np.float32), KEY)


def test_anonymize_cli_end_to_end(pretrained: Path, tmp_path: Path, astronaut: np.ndarray) -> None:
    lab = make_lab(tmp_path)
    write_image(tmp_path / "in.png", astronaut)
    model = pretrained / "id2face-64"
    outputs = []
    for name, extra in (("a", ()), ("b", ()), ("c", ("--steps", "2"))):
        done = lab.cli("anonymize", tmp_path / "in.png", "-o", tmp_path / name, "--case", CASE,
                       "--backend", "id2face", "--model-dir", model, *extra, "--json")  # fmt: skip
        assert done.exit_code == 0, done.output
        summary = json.loads(done.stdout)
        assert summary["backend"] == "id2face" and summary["faces"] == 1
        outputs.append(read_image(tmp_path / name / "in.png"))
    manifest = read_manifest(tmp_path / "a" / "in.png")
    assert manifest is not None and manifest.backend == "id2face"
    assert manifest.model_id is not None and manifest.model_id.startswith("tiny-id2face-")
    assert not np.array_equal(outputs[0], astronaut)
    assert np.array_equal(outputs[0], outputs[1])  # same photo, same case key: same pixels
    assert not np.array_equal(outputs[0], outputs[2])  # --steps reaches the sampler


def test_eval_cli_reports_it(pretrained: Path, shared_dir: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ifadit_cli.main import cli

    out = tmp_path / "report"
    args = ["eval", "--data", str(shared_dir / "data" / "reid" / "dlib-johns"), "--backend", "id2face",
            "--model-dir", f"id2face={pretrained / 'id2face-64'}", "--recognizer", "dlib", "--limit", "4",
            "--random-keys", "2", "-o", str(out)]  # fmt: skip
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    (row,) = metrics["backends"]
    assert row["backend"] == "id2face" and row["reversible"] is False and row["reversible_metrics"] is None
    assert 0.0 <= row["anonymity"][0]["verification"] <= 1.0
    assert "id2face" in result.stdout.splitlines()[1]


def test_a_process_loads_a_model_folder_once_while_its_weights_are_unchanged(tmp_path: Path) -> None:
    folder = tmp_path / "id2face-64"
    save_id2face(tiny_id2face(recognizer=load_dlib_resnet()), folder, name="tiny-id2face")
    first, second = Id2FaceBackend(model_dir=folder), Id2FaceBackend(model_dir=folder)
    assert first.model is second.model  # read, hashed and built once
    replaced = tiny_id2face(recognizer=load_dlib_resnet())
    replaced.id_mean.fill_(0.5)
    save_id2face(replaced, folder, name="tiny-id2face")
    third = Id2FaceBackend(model_dir=folder)
    assert third.model is not first.model and third.model_sha256 != first.model_sha256
