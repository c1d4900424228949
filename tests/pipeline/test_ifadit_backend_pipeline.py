"""The reversible iFADIT backend (tiny seeded model) through the unchanged anonymize and restore pipelines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ifadit.backends import base
from ifadit.errors import ModelError, NoFaceError
from ifadit.media.image import read_image, write_image
from ifadit.media.manifest import read_manifest
from ifadit.models.dlib_resnet import load_dlib_resnet
from ifadit.models.ifadit.checkpoint import save_ifadit
from ifadit.pipeline.anonymize import AnonymizeOptions
from ifadit.pipeline.batch import anonymize_paths, default_backend
from ifadit.pipeline.restore import restore_path
from ifadit.pipeline.restore_plan import RestoreOptions
from tests.ifadit_support import tiny_model
from tests.pipeline.support import CASE, Lab, make_lab


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Lab:
    save_ifadit(
        tiny_model(recognizer=load_dlib_resnet()), tmp_path / "pretrained" / "ifadit-64", name="tiny-ifadit"
    )
    monkeypatch.setenv("IFADIT_PRETRAINED", str(tmp_path / "pretrained"))
    monkeypatch.setitem(base.BACKENDS, "ifadit", "ifadit.backends.ifadit:IfaditBackend")
    made = make_lab(tmp_path)
    made.require_approval(False)
    return made


def test_ifadit_backend_plugs_into_anonymize_and_restore(
    lab: Lab, tmp_path: Path, astronaut: np.ndarray
) -> None:
    write_image(tmp_path / "in.png", astronaut)
    with lab.open("olga") as vault:
        run = anonymize_paths(
            vault, [tmp_path / "in.png"], tmp_path / "out.png", AnonymizeOptions(backend="ifadit"), case=CASE
        )
    assert run.exit_code == 0 and run.items[0].faces == 1
    manifest = read_manifest(tmp_path / "out.png")
    assert manifest is not None and manifest.backend == "ifadit"
    assert manifest.model_id is not None and manifest.model_id.startswith("tiny-ifadit-")
    assert manifest.model_sha256 is not None and len(manifest.model_sha256) == 64
    anonymized = read_image(tmp_path / "out.png")
    assert not np.array_equal(anonymized, astronaut)

    options = RestoreOptions(case=CASE, reason="test")
    with lab.open("ivan") as vault:
        report = restore_path(vault, tmp_path / "out.png", tmp_path / "restored.png", options)
    assert report.mode == "model" and report.faces_restored == 1 and report.model_id == manifest.model_id
    restored = read_image(tmp_path / "restored.png")
    assert not np.array_equal(restored, anonymized)

    # Without a manifest the faces must be found by the detector; the untrained tiny model's surrogates are
    # not faces, so this restore fails clearly (a trained model's are, see test_restore.py's keyed backend).
    write_image(tmp_path / "copy.png", anonymized)
    with lab.open("ivan") as vault, pytest.raises(NoFaceError, match="no anonymized face was found"):
        restore_path(
            vault,
            tmp_path / "copy.png",
            tmp_path / "copy_restored.png",
            RestoreOptions(case=CASE, reason="test", key=lab.key),
        )
    assert not (tmp_path / "copy_restored.png").exists()


def test_default_backend_is_ifadit_even_when_its_model_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never a silent fallback to a one-way backend: without the model the default is still ifadit, and
    building it is an error naming the fix."""
    assert default_backend() == "ifadit"
    monkeypatch.setenv("IFADIT_PRETRAINED", str(tmp_path / "nowhere"))
    assert default_backend() == "ifadit"
    with pytest.raises(ModelError, match="IFADIT_PRETRAINED"):
        base.get_backend("ifadit")
