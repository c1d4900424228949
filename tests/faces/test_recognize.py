"""ifadit.faces.recognize: the registry, the protocol's decisions, and dlib vs torch-dlib on real crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ifadit.eval.metrics import rank1
from ifadit.faces.distance import paired_distances
from ifadit.faces.recognize import DLIB_THRESHOLD, DlibRecognizer, Recognizer, TorchDlibRecognizer
from ifadit.faces.registry import RECOGNIZERS, get_recognizer
from tests.recognizer_support import faceres_weights, reid_set


@pytest.fixture(scope="module")
def dlib_rec() -> Recognizer:
    return get_recognizer("dlib")


@pytest.fixture(scope="module")
def torch_rec() -> Recognizer:
    return get_recognizer("torch-dlib")


def test_registry_names_and_unknown_name() -> None:
    assert set(RECOGNIZERS) == {"dlib", "torch-dlib", "faceres", "insightface"}
    with pytest.raises(
        ValueError, match="unknown recognizer 'arcface'; choose one of dlib, torch-dlib, faceres"
    ):
        get_recognizer("arcface")


def test_dlib_pair_shares_metric_and_threshold(dlib_rec: Recognizer, torch_rec: Recognizer) -> None:
    assert isinstance(dlib_rec, DlibRecognizer) and isinstance(torch_rec, TorchDlibRecognizer)
    for rec in (dlib_rec, torch_rec):
        assert (rec.dim, rec.metric, rec.threshold) == (128, "l2", DLIB_THRESHOLD)


@pytest.mark.parametrize(
    "crops",
    [
        np.zeros((2, 150, 150, 3), np.float32),
        np.zeros((2, 150, 140, 3), np.uint8),
        np.zeros((0, 64, 64, 3), np.uint8),
    ],
)
def test_embed_rejects_anything_but_canonical_crops(torch_rec: Recognizer, crops: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"expected canonical crops uint8 \[N,S,S,3\]"):
        torch_rec.embed(crops)


@pytest.mark.parametrize("size", [150, 64, 256])
def test_torch_port_agrees_with_dlib_at_every_crop_size(
    shared_dir: Path, dlib_rec: Recognizer, torch_rec: Recognizer, size: int
) -> None:
    crops = reid_set(shared_dir, "deepface", limit=10, size=size).crops[:5]
    ref, ours = dlib_rec.embed(crops), torch_rec.embed(crops)
    assert ref.shape == ours.shape == (5, 128) and ours.dtype == np.float32
    cosine = 1.0 - paired_distances(ref, ours, "cosine")
    # at 150 px both read the same chip; other sizes differ by dlib's uint8 rounding after the shared resize
    assert cosine.min() >= (0.9999 if size == 150 else 0.999)


def test_same_person_decisions_on_deepface(shared_dir: Path, torch_rec: Recognizer) -> None:
    reid = reid_set(shared_dir, "deepface")
    emb = torch_rec.embed(reid.crops)
    labels = np.array(reid.labels)
    first, second = np.flatnonzero(labels == labels[0])[:2]
    other = np.flatnonzero(labels != labels[0])[0]
    assert torch_rec.same_person(emb[first], emb[second]) is True
    assert not torch_rec.same_person(emb[first], emb[other])
    assert torch_rec.same_person(emb[[first, first]], emb[[second, other]]).tolist() == [True, False]
    assert rank1(emb, reid.labels, torch_rec.metric) >= 0.95


def test_faceres_through_the_registry(shared_dir: Path) -> None:
    faceres_weights()
    rec = get_recognizer("faceres")
    assert (rec.name, rec.dim, rec.metric) == ("faceres", 1024, "cosine")
    emb = rec.embed(reid_set(shared_dir, "dlib-johns", limit=4, size=64).crops)
    assert emb.shape == (4, 1024) and emb.dtype == np.float32 and np.isfinite(emb).all()
