"""Manifests embedded through `write_image` read back from PNG, JPEG and sidecars; video face records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ifadit.errors import ManifestError
from ifadit.media.image import write_image
from ifadit.media.manifest import (
    FaceRecord,
    Manifest,
    embedding_for,
    needs_sidecar,
    read_manifest,
    sidecar_path,
)

MANIFEST = Manifest(
    backend="blur",
    vault_id="v" * 32,
    signing_key_id="f" * 64,
    pixels_sha256="0" * 64,
    tool_version="0.1.0",
    faces=(FaceRecord(index=0, box=(1, 2, 5, 7), track_id=3, frame=12),),
    manifest_id="mf_" + "5" * 32,
    signature="c2ln",
)


@pytest.mark.parametrize("name", ["out.png", "out.jpg", "out.jpeg"])
def test_embedded_manifest_round_trips(tmp_path: Path, astronaut: np.ndarray, name: str) -> None:
    path = tmp_path / name
    assert not needs_sidecar(path, MANIFEST)
    write_image(path, astronaut[:64, :64], **embedding_for(path, MANIFEST))
    assert read_manifest(path) == MANIFEST
    assert read_manifest(path).signature == MANIFEST.signature  # type: ignore[union-attr]


def test_webp_needs_a_sidecar_and_the_sidecar_wins(tmp_path: Path, astronaut: np.ndarray) -> None:
    path = tmp_path / "out.webp"
    assert needs_sidecar(path, MANIFEST) and embedding_for(path, MANIFEST) == {}
    write_image(path, astronaut[:64, :64])
    assert read_manifest(path) is None
    sidecar_path(path).write_text(MANIFEST.to_json())
    assert read_manifest(path) == MANIFEST


def test_face_frame_must_be_a_non_negative_integer() -> None:
    text = MANIFEST.to_json().replace('"frame":12', '"frame":-1')
    with pytest.raises(ManifestError, match="face 0: frame must be a non-negative integer"):
        Manifest.from_json(text)
    assert Manifest.from_json(MANIFEST.to_json()).faces[0].frame == 12
