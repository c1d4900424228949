"""Manifest: canonical JSON round trip, Ed25519 signature through the vault's recipe, tamper detection."""

from __future__ import annotations

import base64
import json
from dataclasses import replace

import numpy as np
import pytest

from ifadit.errors import ManifestError
from ifadit.media.manifest import (
    FaceRecord,
    Manifest,
    SealedRegion,
    pixels_digest,
    sign_manifest,
    verify_manifest,
)
from keyvault import envelope


@pytest.fixture(scope="module")
def signing_key() -> tuple[bytes, bytes]:
    return envelope.generate_signing_key()


def _manifest() -> Manifest:
    sealed = SealedRegion(
        region=(10, 12, 90, 100), wrapped_key="d3JhcA==", ciphertext="Y3Q=", commitment="ab" * 32
    )
    return Manifest(
        backend="blur",
        vault_id="v_0123",
        signing_key_id="fp_abcd",
        pixels_sha256="00" * 32,
        tool_version="0.1.0",
        faces=(
            FaceRecord(index=0, box=(10, 12, 90, 100), track_id=3, sealed=sealed),
            FaceRecord(1, (0, 0, 5, 5)),
        ),
        key_handle="kh_9f",
        key_version=2,
        audit_seq=41,
        mask_scale=1.3,
        manifest_id="mf_" + "0123456789abcdef" * 2,
    )


def _signed(signing_key: tuple[bytes, bytes]) -> Manifest:
    private, _ = signing_key
    return sign_manifest(_manifest(), lambda data: envelope.sign(private, data))


def _verifier(signing_key: tuple[bytes, bytes]):
    _, public = signing_key
    return lambda signature, data: envelope.verify_signature(public, signature, data)


def test_json_round_trip_is_exact_and_canonical(signing_key) -> None:
    signed = _signed(signing_key)
    text = signed.to_json()
    again = Manifest.from_json(text)
    assert again == signed and again.signature == signed.signature
    assert again.to_json() == text
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))


def test_signature_verifies(signing_key) -> None:
    verify_manifest(_signed(signing_key), _verifier(signing_key))


def test_unsigned_manifest_is_refused(signing_key) -> None:
    with pytest.raises(ManifestError, match="not signed"):
        verify_manifest(_manifest(), _verifier(signing_key))


def test_other_vault_key_is_refused(signing_key) -> None:
    other = envelope.generate_signing_key()
    with pytest.raises(ManifestError, match="does not verify"):
        verify_manifest(_signed(signing_key), _verifier(other))


@pytest.mark.parametrize(
    "change",
    [
        {"backend": "mask"},
        {"vault_id": "v_other"},
        {"signing_key_id": "fp_other"},
        {"pixels_sha256": "11" * 32},
        {"tool_version": "9.9"},
        {"key_handle": "kh_other"},
        {"key_version": 1},
        {"audit_seq": 40},
        {"model_id": "gen-000"},
        {"mask_scale": 1.0},
        {"manifest_id": "mf_" + "f" * 32},
        {"faces": ()},
    ],
    ids=lambda c: next(iter(c)),
)
def test_every_top_level_field_is_covered_by_the_signature(signing_key, change) -> None:
    tampered = replace(_signed(signing_key), **change)
    with pytest.raises(ManifestError, match="does not verify"):
        verify_manifest(tampered, _verifier(signing_key))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("box", 0), 11),
        (("track_id",), 4),
        (("sealed", "region", 2), 91),
        (("sealed", "wrapped_key"), "d3JhcB=="),
        (("sealed", "ciphertext"), "Y3R="),
        (("sealed", "commitment"), "cd" * 32),
    ],
    ids=lambda p: str(p),
)
def test_every_face_field_is_covered_by_the_signature(signing_key, path, value) -> None:
    raw = json.loads(_signed(signing_key).to_json())
    target = raw["faces"][0]
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    tampered = Manifest.from_json(json.dumps(raw))
    with pytest.raises(ManifestError, match="does not verify"):
        verify_manifest(tampered, _verifier(signing_key))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda raw: raw.update(format="ifadit-manifest/9"), "unsupported manifest format"),
        (lambda raw: raw.update(extra=1), "unknown manifest field 'extra'"),
        (lambda raw: raw.update(backend=5), "'backend' must be a string"),
        (lambda raw: raw.update(key_version=-1), "'key_version' must be a non-negative integer"),
        (lambda raw: raw.update(audit_seq=True), "'audit_seq' must be a non-negative integer"),
        (lambda raw: raw.update(faces={}), "'faces' must be a list"),
        (lambda raw: raw.update(mask_scale=0), "'mask_scale' must be a positive number"),
        (lambda raw: raw.update(mask_scale="1.3"), "'mask_scale' must be a positive number"),
        (lambda raw: raw.update(mask_scale=True), "'mask_scale' must be a positive number"),
        (lambda raw: raw.pop("manifest_id"), "'manifest_id' must be 'mf_' and 32 lower-case hex digits"),
        (lambda raw: raw.update(manifest_id="mf_ABC"), "'manifest_id' must be 'mf_' and 32 lower-case hex"),
        (
            lambda raw: raw.update(format="ifadit-manifest/2"),
            "'manifest_id' does not exist in format ifadit-manifest/2",
        ),
        (lambda raw: raw["faces"][0].update(index=7), "face 0: index must be 0"),
        (lambda raw: raw["faces"][0].update(box=[5, 5, 1, 1]), "face 0: box must be four integers"),
        (lambda raw: raw["faces"][0]["sealed"].pop("commitment"), "face 0: sealed payload is malformed"),
    ],
)
def test_malformed_manifests_name_the_problem(signing_key, mutate, message) -> None:
    raw = json.loads(_signed(signing_key).to_json())
    mutate(raw)
    with pytest.raises(ManifestError, match=message):
        Manifest.from_json(json.dumps(raw), source="out.png")


def test_a_version_1_manifest_without_mask_scale_is_still_read(signing_key) -> None:
    """Outputs written before format 2 keep restoring: no mask_scale, and their signature still verifies."""
    old = replace(_manifest(), mask_scale=None, manifest_id=None, format="ifadit-manifest/1")
    raw = json.loads(old.to_json())
    assert "mask_scale" not in raw and "manifest_id" not in raw  # a version-1 writer signed neither
    raw.pop("signature")
    private, _ = signing_key
    signature = envelope.sign(private, json.dumps(raw, sort_keys=True, separators=(",", ":")).encode())
    raw["signature"] = base64.b64encode(signature).decode()
    parsed = Manifest.from_json(json.dumps(raw))
    assert parsed.mask_scale is None and parsed.format == "ifadit-manifest/1"
    verify_manifest(parsed, _verifier(signing_key))
    assert parsed.to_json() == json.dumps(raw, sort_keys=True, separators=(",", ":"))


def test_not_json_names_the_source() -> None:
    with pytest.raises(ManifestError, match="^out.png: manifest is not valid JSON"):
        Manifest.from_json(b"\xff\x00garbage", source="out.png")


def test_pixels_digest_depends_on_pixels_and_shape() -> None:
    image = np.zeros((4, 6, 3), np.uint8)
    flipped = image.copy()
    flipped[0, 0, 0] = 1
    assert pixels_digest(image) != pixels_digest(flipped)
    assert pixels_digest(image) != pixels_digest(np.zeros((6, 4, 3), np.uint8))
    assert pixels_digest(image) == pixels_digest(image.copy())
