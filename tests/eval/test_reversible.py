"""Acceptance figures of reversible backends, scored by the real dlib recognizer on real faces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ifadit.backends.ifadit import IfaditBackend
from ifadit.eval.reversible import ReversibleImages, evaluation_keys, reversible_images, score
from ifadit.faces.recognize import TorchDlibRecognizer
from ifadit.models.dlib_resnet import load_dlib_resnet
from ifadit.models.ifadit.flow import flip_bit
from tests.ifadit_support import astronaut_crops, tiny_model
from tests.recognizer_support import reid_set


class RollBackend:
    """Anonymizes crop i as crop i + roll(key) of the batch (another person); restore rolls back."""

    name = "roll"
    reversible = True
    crop_size = 64
    colour_match = False

    def __init__(self, rolls: dict[bytes, int]) -> None:
        self.rolls = rolls

    def anonymize_crops(self, crops: np.ndarray, key: bytes | None) -> np.ndarray:
        assert key is not None
        return np.roll(crops, self.rolls[key], axis=0)

    def restore_crops(
        self, crops: np.ndarray, key: bytes | None, pasted_at: float | None = None
    ) -> np.ndarray:
        assert key is not None
        return np.roll(crops, -self.rolls[key], axis=0)


@pytest.fixture(scope="module")
def people(shared_dir: Path) -> np.ndarray:
    """One 64 px crop of each of the 5 people of reid/dlib-johns."""
    faces = reid_set(shared_dir, "dlib-johns", None, 64)
    first = {label: i for i, label in reversed(list(enumerate(faces.labels)))}
    return faces.crops[sorted(first.values())]


@pytest.fixture(scope="module")
def recognizer() -> TorchDlibRecognizer:
    return TorchDlibRecognizer()


def test_identity_backend_scores_as_no_anonymization(
    people: np.ndarray, recognizer: TorchDlibRecognizer
) -> None:
    keys = evaluation_keys(0)
    report = score(reversible_images(RollBackend(dict.fromkeys(keys, 0)), people), recognizer)
    assert report.faces == 5 and report.recognizer == "torch-dlib"
    assert report.anonymized_match == report.restored_match == report.random_key_match == 1.0
    assert report.near_key_match == 1.0 and report.keys_differ == 0.0


def test_ideal_reversible_backend_scores_perfectly(
    people: np.ndarray, recognizer: TorchDlibRecognizer
) -> None:
    """Other people as surrogates, exact restore with the right key, other people with wrong keys."""
    k1, k2, k_random, k_near = evaluation_keys(0)
    backend = RollBackend({k1: 1, k2: 2, k_random: 3, k_near: 4})
    report = score(reversible_images(backend, people), recognizer)
    assert report.anonymized_match == 0.0 and report.restored_match == 1.0
    assert report.random_key_match == report.near_key_match == 0.0 and report.keys_differ == 1.0
    assert set(report.to_dict()) >= {"anonymized_match", "restored_match", "keys_differ"}


def test_keys_are_reproducible_and_the_near_key_is_one_bit_off() -> None:
    k1, k2, k3, near = evaluation_keys(3)
    assert evaluation_keys(3) == (k1, k2, k3, near) and len({k1, k2, k3, near}) == 4
    assert sum(bin(a ^ b).count("1") for a, b in zip(k1, near, strict=True)) == 1


def test_wrong_key_fractions_average_over_every_wrong_key(
    people: np.ndarray, recognizer: TorchDlibRecognizer
) -> None:
    """One wrong key that restores the person and three that give others: the wrong-key rates are 1/4."""
    others = [np.roll(people, r, axis=0) for r in (1, 2, 3)]
    images = ReversibleImages(
        original=people,
        anonymized=others[0],
        anonymized_other=(others[0], others[1]),
        restored=people,
        restored_random=(people, *others),
        restored_near=(others[2], people),
    )
    report = score(images, recognizer)
    assert report.random_key_match == 0.25 and report.near_key_match == 0.5
    assert report.keys_differ == 0.5 and report.restored_match == 1.0 and report.anonymized_match == 0.0


def test_flip_bit_changes_exactly_the_named_bit() -> None:
    key = bytes(range(32))
    for bit in (0, 7, 127, 255):
        flipped = flip_bit(key, bit)
        diff = int.from_bytes(key, "little") ^ int.from_bytes(flipped, "little")
        assert diff == 1 << bit


def test_runs_on_the_ifadit_backend(astronaut: np.ndarray, recognizer: TorchDlibRecognizer) -> None:
    model = tiny_model(recognizer=load_dlib_resnet())
    backend = IfaditBackend(model=(model, "tiny-000000000000", "0" * 64))
    images = reversible_images(backend, astronaut_crops(astronaut, 2))
    assert images.restored.shape == images.original.shape == (2, 16, 16, 3)
    report = score(images, recognizer)
    fractions = (report.anonymized_match, report.restored_match, report.random_key_match, report.keys_differ)
    assert all(0.0 <= v <= 1.0 for v in fractions)
