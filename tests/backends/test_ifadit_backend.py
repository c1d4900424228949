"""The reversible iFADIT backend on a tiny seeded model with the real torch dlib recognizer."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from ifadit.backends import base
from ifadit.backends.ifadit import IfaditBackend, default_model_dir, is_shipped
from ifadit.errors import ModelError
from ifadit.models.dlib_resnet import RESNET_ENV, load_dlib_resnet
from ifadit.models.ifadit.checkpoint import load_ifadit, save_ifadit
from ifadit.models.ifadit.model import IfaditModel
from tests.ifadit_support import RES, astronaut_crops, tiny_model

KEY = bytes(range(32))
OTHER = bytes(range(1, 33))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pretrained") / "ifadit-64"
    save_ifadit(tiny_model(recognizer=load_dlib_resnet()), folder, name="tiny-ifadit")
    return folder


@pytest.fixture(scope="module")
def backend(model_dir: Path) -> IfaditBackend:
    return IfaditBackend(model_dir=model_dir)


@pytest.fixture(scope="module")
def crops(astronaut: np.ndarray) -> np.ndarray:
    return astronaut_crops(astronaut, 4)


def test_missing_weights_name_the_files_and_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IFADIT_PRETRAINED", str(tmp_path))
    assert default_model_dir() == tmp_path / "ifadit-64" and not is_shipped()
    with pytest.raises(ModelError) as info:
        IfaditBackend()
    message = str(info.value)
    assert str(tmp_path / "ifadit-64" / "config.json") in message
    assert str(tmp_path / "ifadit-64" / "model.safetensors") in message
    assert "ifadit train encoder" in message and "ifadit train flow" in message


def test_a_float16_recognizer_copy_is_refused_for_anonymizing(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The training machines' float16 copy of dlib's ResNet would render surrogates that differ from the .dat's
    by rounding: a backend that loads its model from a folder refuses it, naming the file and the fix (the
    refusal looks only at the file name, so the file need not exist)."""
    copy = tmp_path / "resnet-f16.safetensors"
    monkeypatch.setenv(RESNET_ENV, str(copy))
    with pytest.raises(ModelError, match=rf"{copy}: \$IFADIT_DLIB_RESNET names a float16 copy.*unset it"):
        IfaditBackend(model_dir=model_dir)


def test_registry_builds_it_with_options(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(base.BACKENDS, "ifadit", "ifadit.backends.ifadit:IfaditBackend")
    built = base.get_backend("ifadit", model_dir=model_dir)
    assert built.name == "ifadit" and built.reversible and built.crop_size == RES
    assert is_shipped(model_dir)


def test_model_id_names_the_weights(backend: IfaditBackend) -> None:
    assert backend.model_id == f"tiny-ifadit-{backend.model_sha256[:12]}"
    assert type(backend.model.recognizer).__name__ == "DlibResNet"


def test_same_crops_and_key_give_identical_bytes(backend: IfaditBackend, crops: np.ndarray) -> None:
    a = backend.anonymize_crops(crops, KEY)
    assert a.dtype == np.uint8 and a.shape == crops.shape
    assert a.tobytes() == backend.anonymize_crops(crops, KEY).tobytes()
    assert a[1].tobytes() == backend.anonymize_crops(crops[1:2], KEY)[0].tobytes()  # batching does not matter
    assert not np.array_equal(a, crops)


def test_keys_change_the_surrogate_and_a_wrong_key_restores_another_face(
    backend: IfaditBackend, crops: np.ndarray
) -> None:
    anon = backend.anonymize_crops(crops, KEY)
    assert np.abs(anon.astype(int) - backend.anonymize_crops(crops, OTHER)).mean() > 0.5
    right = backend.restore_crops(anon, KEY)
    wrong = backend.restore_crops(anon, OTHER)  # never an error
    assert right.shape == wrong.shape == crops.shape
    assert np.abs(right.astype(int) - wrong).mean() > 0.5


def test_other_crop_sizes_are_resized_in_and_out(
    backend: IfaditBackend, crops: np.ndarray, astronaut: np.ndarray
) -> None:
    big = astronaut_crops(astronaut, 2, size=2 * RES)
    out = backend.anonymize_crops(big, KEY)
    assert out.shape == big.shape and out.dtype == np.uint8


def test_key_must_be_vault_material(backend: IfaditBackend, crops: np.ndarray) -> None:
    with pytest.raises(ValueError, match="32-byte key material"):
        backend.anonymize_crops(crops, None)
    with pytest.raises(ValueError, match="32-byte key material"):
        backend.restore_crops(crops, b"short")
    with pytest.raises(ValueError, match="uint8 crops"):
        backend.anonymize_crops(crops.astype(np.float32), KEY)


def test_a_process_loads_a_model_folder_once_while_its_weights_are_unchanged(tmp_path: Path) -> None:
    folder = tmp_path / "ifadit-64"
    save_ifadit(tiny_model(seed=1, recognizer=load_dlib_resnet()), folder, name="tiny-ifadit")
    first, second = IfaditBackend(model_dir=folder), IfaditBackend(model_dir=folder)
    assert first.model is second.model  # read, hashed and built once
    save_ifadit(tiny_model(seed=2, recognizer=load_dlib_resnet()), folder, name="tiny-ifadit")  # replaced
    third = IfaditBackend(model_dir=folder)
    assert third.model is not first.model and third.model_sha256 != first.model_sha256


def test_restore_of_crops_recut_from_a_photo_publishes_as_paste_back_did(
    model_dir: Path, tmp_path: Path, crops: np.ndarray
) -> None:
    """With restore refinements, `pasted_at` makes them paste their renders into the crops (face ellipse at that
    scale, colour-matched) before re-reading, and so changes the restore; without refinements it changes
    nothing (one read of the crops)."""
    model, _, _ = load_ifadit(model_dir, recognizer=load_dlib_resnet())
    refined = tmp_path / "refined"
    with_steps = IfaditModel(
        dataclasses.replace(model.config, reread_refinements=2), model.generator, model.recognizer
    )
    with_steps.load_state_dict(model.state_dict())
    save_ifadit(with_steps, refined, name="tiny-ifadit")
    plain, stepped = IfaditBackend(model_dir=model_dir), IfaditBackend(model_dir=refined)
    anonymized = plain.anonymize_crops(crops, KEY)
    assert np.array_equal(
        plain.restore_crops(anonymized, KEY, pasted_at=1.3), plain.restore_crops(anonymized, KEY)
    )
    recut = stepped.restore_crops(anonymized, KEY, pasted_at=1.3)
    assert recut.shape == anonymized.shape and recut.dtype == np.uint8
    assert not np.array_equal(recut, stepped.restore_crops(anonymized, KEY))
