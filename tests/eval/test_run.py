"""`evaluate` end to end on real faces: the tiny seeded iFADIT backend (reversible), an identity backend and a
noise backend, scored by the torch port of dlib's recognizer; then the report files."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ifadit.backends.ifadit import IfaditBackend
from ifadit.eval.report import METRICS_FILE, PLOTS, REPORT_FILE, headline_rows, render_table, write_report
from ifadit.eval.run import EvalOptions, evaluate, random_keys
from ifadit.faces.recognize import TorchDlibRecognizer
from tests.ifadit_support import tiny_model


class IdentityBackend:
    name, reversible, crop_size, colour_match = "identity", False, 64, False

    def anonymize_crops(self, crops: np.ndarray, key: bytes | None) -> np.ndarray:
        return crops.copy()

    def restore_crops(
        self, crops: np.ndarray, key: bytes | None, pasted_at: float | None = None
    ) -> np.ndarray:
        raise AssertionError("not reversible")


class NoiseBackend(IdentityBackend):
    name = "noise"

    def anonymize_crops(self, crops: np.ndarray, key: bytes | None) -> np.ndarray:
        return np.random.default_rng(0).integers(0, 256, crops.shape, dtype=np.uint8)


def without_speed(document: dict[str, Any]) -> dict[str, Any]:
    return {**document, "backends": [{**b, "speed": None} for b in document["backends"]]}


@pytest.fixture(scope="module")
def options(shared_dir: Path) -> EvalOptions:
    return EvalOptions(data=shared_dir / "data" / "reid" / "dlib-johns", limit=6, seed=0, attack_steps=20)


@pytest.fixture(scope="module")
def recognizer() -> TorchDlibRecognizer:
    return TorchDlibRecognizer()


@pytest.fixture(scope="module")
def tiny_backend() -> IfaditBackend:
    """The tiny model with its stand-in recognizer inside (fast); the scores still come from real dlib."""
    return IfaditBackend(model=(tiny_model(), "tiny-0123", "0" * 64))


def test_keys_are_seeded() -> None:
    keys = random_keys(3, 5)
    assert keys == random_keys(3, 5) and keys != random_keys(3, 6)
    assert all(len(k) == 32 for k in keys) and len(set(keys)) == 3


def test_identity_and_noise_backends_fail_as_expected(
    options: EvalOptions, recognizer: TorchDlibRecognizer
) -> None:
    document, results = evaluate(
        options, [IdentityBackend(), NoiseBackend()], [recognizer], random_keys(1, 0)
    )
    identity, noise = document["backends"]
    assert identity["anonymity"][0]["verification"] == 1.0  # anonymity failure
    assert identity["utility"]["landmark_nme"] == 0.0 and identity["utility"]["detection_anonymized"] == 1.0
    assert noise["anonymity"][0]["verification"] == 0.0
    assert noise["utility"]["detection_anonymized"] == 0.0  # utility failure
    assert noise["utility"]["frechet"] is None  # no faceres among the recognizers
    assert identity["reversible_metrics"] is None and identity["speed"]["restore_ms_per_face"] is None
    assert identity["colour"]["delta_e"] == 0.0  # its own crop pasted back: no change
    assert noise["colour"]["delta_e"] > 10
    assert max(identity["colour"]["grey_chroma"], noise["colour"]["grey_chroma"]) < 1e-9  # grey in, grey out
    assert document["faces"] == 6 and document["identities"] >= 2
    assert [r.backend for r in results] == ["identity", "noise"]


def test_reversible_backend_gets_recovery_keys_and_attacks(
    options: EvalOptions, recognizer: TorchDlibRecognizer, tiny_backend: IfaditBackend, tmp_path: Path
) -> None:
    keys = random_keys(4, options.seed)
    document, results = evaluate(options, [tiny_backend], [recognizer], keys)
    metrics = document["backends"][0]
    reversible = metrics["reversible_metrics"]
    assert metrics["crop_size"] == 16 and reversible["wrong_keys"] == 3 and reversible["near_keys"] == 3
    assert metrics["model_id"] == "tiny-0123"  # the figures name the weights they belong to
    assert reversible["inversion_known_keys"] == 2 and reversible["inversion_test_faces"] == 3
    row = reversible["by_recognizer"]["torch-dlib"]
    for name in (
        "restored_match",
        "random_key_match",
        "key_diversity",
        "key_search",
        "averaging",
        "inversion",
    ):
        assert 0.0 <= row[name] <= 1.0
    assert -1.0 <= row["identity_cosine"] <= 1.0
    assert -1.0 <= reversible["recovery"]["ssim"] <= 1.0 and reversible["recovery"]["psnr"] > 0
    assert metrics["speed"]["restore_ms_per_face"] > 0
    assert set(results[0].samples) == {"original", "anonymized", "restored"}

    again, _ = evaluate(options, [tiny_backend], [recognizer], keys)  # deterministic but for the timings
    assert without_speed(again) == without_speed(document)

    written = write_report(document, results, tmp_path / "report")
    assert sorted(p.name for p in written) == sorted([METRICS_FILE, REPORT_FILE, *PLOTS])
    assert json.loads((tmp_path / "report" / METRICS_FILE).read_text())["backends"][0]["backend"] == "ifadit"
    text = (tmp_path / "report" / REPORT_FILE).read_text()
    assert (
        "Colour: CIEDE2000" in text
        and "Recovery (right key, face crop)" in text
        and "inversion" in text
        and "`tiny-0123`" in text
    )
    assert all((tmp_path / "report" / p).read_bytes()[:4] == b"\x89PNG" for p in PLOTS)


def test_reversible_backends_need_three_keys(
    options: EvalOptions, recognizer: TorchDlibRecognizer, tiny_backend: IfaditBackend
) -> None:
    with pytest.raises(ValueError, match="at least 3 keys"):
        evaluate(replace(options, limit=4), [tiny_backend], [recognizer], random_keys(2, 0))


def test_headline_table_has_one_row_per_backend() -> None:
    document = {
        "recognizers": [{"name": "dlib"}],
        "backends": [
            {
                "backend": "blur",
                "anonymity": [{"recognizer": "dlib", "verification": 0.25, "rank1": 0.5, "chance": 0.1}],
                "utility": {
                    "landmark_nme": 0.05,
                    "yaw_error": 2.0,
                    "detection_anonymized": 0.5,
                    "detection_original": 1.0,
                    "frechet": None,
                },
                "colour": {"delta_e": 3.25, "grey_chroma": 0.0},
                "speed": {"anonymize_ms_per_face": 1.5},
            }
        ],
    }
    rows = headline_rows(document)
    assert rows[0][:3] == ["backend", "dlib verif", "dlib rank-1 (chance)"]
    assert rows[1][:3] == ["blur", "0.250", "0.500 (0.100)"]
    assert rows[0][-3:] == ["ΔE00 skin", "grey C*", "ms/face"] and rows[1][-3:] == ["3.25", "0.00", "1.50"]
    assert render_table(rows).splitlines()[1].startswith("blur")
