"""The shipped iFADIT model (`pretrained/ifadit-64`) end to end through the CLI on a real photo.

anonymize -> model restore with the right key (through the manifest) -> restore of a manifest-less copy with a
wrong key. Identities are compared with the torch recognizer on 64 px crops aligned by the original face's
landmarks (the pipeline keeps the face geometry, so the same alignment applies to every output).

Whether a right-key restore brings the identity back is a property of the model's training, measured on
held-out face crops in its model card (`scripts/eval_ifadit.py`: 96-100 % of faces for `ifadit-1381480e9bd9`).
Through a photo it is less: the surrogate is pasted back inside an ellipse with colour matching, and restore
reads that blend (its refinements paste their renders the same way, `Backend.restore_crops(pasted_at=...)`);
on the astronaut, 87 of 100 keys restore within dlib's threshold through paste-back and re-detection
(`python scripts/astronaut_keys.py`; `ifadit-eb0e6c580a68`: 83, and 67 before restore modelled the paste). The right-key test below uses a
key fixed in an earlier session, one of those that restore.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from ifadit.backends.ifadit import default_model_dir, is_shipped
from ifadit.media.image import read_image, write_image
from ifadit.media.manifest import read_manifest
from ifadit.models.ifadit.checkpoint import read_ifadit_config
from ifadit.models.recognizer_names import DLIB_THRESHOLD
from keyvault import keys
from tests.pipeline.support import CASE, Lab, identity_distance, issue_with_material, make_lab

pytestmark = pytest.mark.skipif(
    not is_shipped(), reason="pretrained/ifadit-64 is not shipped in this checkout"
)

RESTORE = ("--case", CASE, "--reason", "court order 7")


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    made = make_lab(tmp_path)
    made.require_approval(False)
    return made


def test_shipped_model_anonymizes_restores_and_a_wrong_key_is_no_error(
    lab: Lab, tmp_path: Path, astronaut: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The case's newest key, with material fixed here once (not searched for): whether one photo's surrogate
    is far enough from it depends on the key. With `ifadit-1381480e9bd9`, none of 100 fixed keys left the
    astronaut within dlib's threshold (torch dlib, pasted at 1.3; `ifadit-eb0e6c580a68`: 1 of 100,
    `ifadit-4cc63db86f55`: 7), against 0.4-0.8 % of faces on the held-out sets (docs/history/ifadit.md)."""
    release = issue_with_material(
        lab, "release", hashlib.sha256(b"ifadit test key: release").digest(), monkeypatch
    )
    write_image(tmp_path / "in.png", astronaut)
    done = lab.cli("anonymize", tmp_path / "in.png", "-o", tmp_path / "out.png", "--case", CASE)
    assert done.exit_code == 0, done.stderr
    manifest = read_manifest(tmp_path / "out.png")
    shipped = read_ifadit_config(default_model_dir())
    assert manifest is not None and manifest.backend == "ifadit"  # the CLI's default once the model ships
    assert manifest.model_sha256 == shipped["sha256"] and manifest.model_id == shipped["model_id"]
    assert manifest.key_handle == release  # the case's newest key

    restored = lab.cli(
        "restore", tmp_path / "out.png", "-o", tmp_path / "restored.png", *RESTORE, user="ivan"
    )
    assert restored.exit_code == 0, restored.stderr

    with lab.open("admin") as vault:
        wrong_key = keys.issue(vault, CASE, "another release").handle
    write_image(tmp_path / "copy.png", read_image(tmp_path / "out.png"))  # lost its manifest
    wrong = lab.cli(
        "restore",
        tmp_path / "copy.png",
        "-o",
        tmp_path / "wrong.png",
        *RESTORE,
        "--key",
        wrong_key,
        user="ivan",
    )
    assert wrong.exit_code == 0, wrong.stderr  # a wrong key is not an error: it gives another face

    again = lab.cli("anonymize", tmp_path / "in.png", "-o", tmp_path / "again.png", "--key", release)
    assert again.exit_code == 0, again.stderr

    anonymized, right, other = (read_image(tmp_path / n) for n in ("out.png", "restored.png", "wrong.png"))
    assert np.array_equal(read_image(tmp_path / "again.png"), anonymized)  # same input and key: same pixels
    assert not np.array_equal(right, anonymized) and not np.array_equal(right, other)
    (d_anonymized,) = identity_distance(astronaut, anonymized)
    assert d_anonymized >= DLIB_THRESHOLD  # the surrogate is not the original person


def test_shipped_model_restores_with_the_right_key_and_not_with_a_wrong_one(
    lab: Lab, tmp_path: Path, astronaut: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two fixed keys, written here once and not searched for: the right one brings the astronaut back nearer
    than the wrong one, which gives another person by the torch recognizer."""
    right_key = issue_with_material(
        lab, "release", hashlib.sha256(b"ifadit test key: right").digest(), monkeypatch
    )
    wrong_key = issue_with_material(
        lab, "other", hashlib.sha256(b"ifadit test key: wrong").digest(), monkeypatch
    )
    write_image(tmp_path / "in.png", astronaut)
    done = lab.cli("anonymize", tmp_path / "in.png", "-o", tmp_path / "out.png", "--key", right_key)
    assert done.exit_code == 0, done.stderr
    write_image(tmp_path / "copy.png", read_image(tmp_path / "out.png"))  # lost its manifest
    for key, name in ((right_key, "right.png"), (wrong_key, "wrong.png")):
        restored = lab.cli(
            "restore", tmp_path / "copy.png", "-o", tmp_path / name, *RESTORE, "--key", key, user="ivan"
        )
        assert restored.exit_code == 0, restored.stderr
    d_right, d_wrong = identity_distance(
        astronaut, *(read_image(tmp_path / n) for n in ("right.png", "wrong.png"))
    )
    assert d_wrong >= DLIB_THRESHOLD  # the wrong key gives another identity
    assert d_right < d_wrong
    assert d_right < DLIB_THRESHOLD  # this key's restore verifies (83 of 100 keys do, module docstring)
