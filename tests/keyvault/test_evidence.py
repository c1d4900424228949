"""Sealed evidence: exact round trip, binding to its context, opaque failure for every tamper."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from keyvault.errors import SealedDataError
from keyvault.evidence import SealedEvidence, seal_region, unseal_region

MATERIAL = bytes(range(32))
CONTEXT = b"out=ab12;face=0;key=kh_1;version=2"


@pytest.fixture(scope="module")
def region() -> bytes:
    return os.urandom(3 * 40 * 50)


def test_round_trip_is_bit_exact(region: bytes) -> None:
    assert unseal_region(MATERIAL, seal_region(MATERIAL, region, CONTEXT), CONTEXT) == region


def test_each_seal_uses_a_fresh_data_key(region: bytes) -> None:
    a, b = seal_region(MATERIAL, region, CONTEXT), seal_region(MATERIAL, region, CONTEXT)
    assert a.wrapped_key != b.wrapped_key and a.ciphertext != b.ciphertext and a.commitment != b.commitment


def test_no_plaintext_and_no_unkeyed_digest_in_the_payload(region: bytes) -> None:
    import hashlib

    evidence = seal_region(MATERIAL, region, CONTEXT)
    blob = evidence.wrapped_key + evidence.ciphertext + evidence.commitment
    assert region[:64] not in blob
    assert hashlib.sha256(region).digest() not in blob
    assert MATERIAL not in blob
    assert "sealed bytes" in repr(evidence) and region[:8].hex() not in repr(evidence)


@pytest.mark.parametrize(
    "other", [b"out=ab12;face=1;key=kh_1;version=2", b"out=ff;face=0;key=kh_1;version=2", b""]
)
def test_payload_moved_to_another_context_fails(region: bytes, other: bytes) -> None:
    with pytest.raises(SealedDataError):
        unseal_region(MATERIAL, seal_region(MATERIAL, region, CONTEXT), other)


def test_wrong_case_key_fails_opaquely(region: bytes) -> None:
    with pytest.raises(SealedDataError) as info:
        unseal_region(bytes(32), seal_region(MATERIAL, region, CONTEXT), CONTEXT)
    assert str(info.value) == str(SealedDataError())


@pytest.mark.parametrize("field", ["wrapped_key", "ciphertext", "commitment"])
def test_every_byte_region_of_the_payload_is_authenticated(region: bytes, field: str) -> None:
    evidence = seal_region(MATERIAL, region, CONTEXT)
    blob = getattr(evidence, field)
    for position in sorted({0, 1, 13, len(blob) // 2, len(blob) - 1}):
        flipped = bytearray(blob)
        flipped[position] ^= 0x01
        with pytest.raises(SealedDataError):
            unseal_region(MATERIAL, replace(evidence, **{field: bytes(flipped)}), CONTEXT)
    with pytest.raises(SealedDataError):
        unseal_region(MATERIAL, replace(evidence, **{field: blob[:-1]}), CONTEXT)


def test_swapped_payloads_between_faces_fail(region: bytes) -> None:
    a = seal_region(MATERIAL, region, CONTEXT)
    b = seal_region(MATERIAL, region[::-1], CONTEXT)
    with pytest.raises(SealedDataError):
        unseal_region(MATERIAL, SealedEvidence(a.wrapped_key, b.ciphertext, a.commitment), CONTEXT)
    with pytest.raises(SealedDataError):
        unseal_region(MATERIAL, SealedEvidence(b.wrapped_key, b.ciphertext, a.commitment), CONTEXT)
