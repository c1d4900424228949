"""KeyMaterial: the one derivation code outside the vault uses, and a repr that never shows the key."""

from __future__ import annotations

import secrets

import pytest

from keyvault import KeyMaterial, UnsealedKey
from keyvault.envelope import hkdf_sha256


def test_derive_is_hkdf_bound_to_its_label() -> None:
    material = secrets.token_bytes(32)
    key = KeyMaterial(material)
    assert key.derive(b"purpose-a|model-1", 40) == hkdf_sha256(material, info=b"purpose-a|model-1", length=40)
    assert key.derive(b"purpose-a|model-1", 40) == KeyMaterial(material).derive(b"purpose-a|model-1", 40)
    assert key.derive(b"purpose-a|model-2", 40) != key.derive(b"purpose-a|model-1", 40)
    assert KeyMaterial(secrets.token_bytes(32)).derive(b"purpose-a|model-1", 40) != key.derive(
        b"purpose-a|model-1", 40
    )


def test_unsealed_key_derives_as_its_material_and_hides_it() -> None:
    material = secrets.token_bytes(32)
    key = UnsealedKey(handle="kh_0", version=2, case_id="C-1", material=material)
    assert key.derive(b"x", 16) == KeyMaterial(material).derive(b"x", 16)
    assert material.hex() not in repr(key) and repr(material) not in repr(key)


def test_empty_material_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        KeyMaterial(b"").derive(b"x", 16)
