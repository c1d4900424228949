"""Anonymity metrics on constructed embeddings, and on real faces through the dlib recognizer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ifadit.eval.anonymity import anonymity, chance_rank1, gallery_rank1, verification_rate
from ifadit.faces.registry import get_recognizer
from tests.recognizer_support import reid_set


def clusters(identities: int, per: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Well-separated identity clusters: `per` noisy copies of each of `identities` random centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(identities, 16)) * 10
    embeddings = np.concatenate([c + 0.1 * rng.normal(size=(per, 16)) for c in centres])
    return embeddings, [f"p{i}" for i in range(identities) for _ in range(per)]


def test_identical_embeddings_verify_and_identify_perfectly() -> None:
    emb, labels = clusters(5, 4)
    assert verification_rate(emb, emb, "l2", 0.6) == 1.0
    assert gallery_rank1(emb, emb, labels, "l2") == 1.0


def test_unrelated_embeddings_never_verify() -> None:
    emb, _ = clusters(5, 4)
    assert verification_rate(emb, emb + 100.0, "l2", 0.6) == 0.0
    assert verification_rate(emb, -emb, "cosine", 0.5) == 0.0


def test_shuffled_identities_identify_at_chance() -> None:
    """Queries whose embeddings carry no identity (a random permutation) hit the right person at chance."""
    emb, labels = clusters(10, 5)
    rates = [
        gallery_rank1(emb[np.random.default_rng(s).permutation(len(emb))], emb, labels, "l2")
        for s in range(40)
    ]
    chance = chance_rank1(labels)
    assert chance == pytest.approx(4 / 49)
    assert abs(float(np.mean(rates)) - chance) < 0.03


def test_rank1_leaves_the_query_source_out_and_skips_singletons() -> None:
    emb = np.array([[0.0], [0.1], [5.0], [5.1], [9.0]])
    labels = ["a", "a", "b", "b", "c"]
    assert gallery_rank1(emb, emb, labels, "l2") == 1.0  # "c" is no query: nobody else to find
    assert chance_rank1(labels) == pytest.approx(0.25)
    assert gallery_rank1(emb[:1], emb[:1], ["a"], "l2") is None and chance_rank1(["a", "b"]) is None
    with pytest.raises(ValueError, match="labels"):
        gallery_rank1(emb, emb, labels[:3], "l2")


def test_a_backend_returning_its_input_fails_anonymity(shared_dir: Path) -> None:
    faces = reid_set(shared_dir, "dlib-johns", 10)
    recognizer = get_recognizer("dlib")
    original = recognizer.embed(faces.crops)
    unchanged = recognizer.embed(faces.crops.copy())  # the identity "backend"
    report = anonymity("dlib", original, unchanged, faces.labels, recognizer.metric, recognizer.threshold)
    assert report.verification == 1.0
    assert report.rank1 == report.rank1_original and report.rank1 is not None and report.rank1 > 0.9
    assert report.chance is not None and report.chance < 0.25
    assert report.to_dict()["faces"] == 10
