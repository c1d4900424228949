"""keyvault.envelope: sealing recipe, Argon2id parameters, HKDF/HMAC, Ed25519, and secret-free failures."""

from __future__ import annotations

import base64
import traceback

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keyvault import envelope
from keyvault.errors import SealedDataError, VaultError

KEY = bytes(range(32))
AAD = b"vault=v1|key=kh_1|version=1|purpose=material"
FAST_KDF = {"memory_cost": 64, "iterations": 1, "lanes": 1}  # tests only: the defaults cost ~0.1 s each


def test_random_key_is_32_fresh_bytes() -> None:
    keys = {envelope.random_key() for _ in range(50)}
    assert len(keys) == 50
    assert all(len(k) == envelope.KEY_BYTES == 32 for k in keys)


@given(plaintext=st.binary(max_size=2048), aad=st.binary(max_size=64))
@settings(max_examples=50, deadline=None)
def test_seal_round_trip_and_layout(plaintext: bytes, aad: bytes) -> None:
    blob = envelope.seal(KEY, plaintext, aad)
    assert blob[0] == envelope.SEAL_VERSION == 1
    assert len(blob) == 1 + 12 + len(plaintext) + 16
    assert envelope.unseal(KEY, blob, aad) == plaintext
    # the explicit-nonce wrapper reads the same layout: version ‖ nonce ‖ ciphertext ‖ tag
    assert envelope.aes_gcm_decrypt(KEY, blob[1:13], blob[13:], aad) == plaintext


def test_seal_uses_a_fresh_nonce_each_time() -> None:
    blobs = {envelope.seal(KEY, b"same", AAD) for _ in range(20)}
    assert len(blobs) == 20
    assert len({b[1:13] for b in blobs}) == 20


def _tampered_blobs(blob: bytes) -> list[bytes]:
    flipped = [blob[:i] + bytes([blob[i] ^ 0x01]) + blob[i + 1 :] for i in range(len(blob))]
    truncated = [blob[:n] for n in range(len(blob))]
    return [*flipped, *truncated, blob + b"\x00", b"\x02" + blob[1:], b""]


def test_every_tampering_raises_the_same_opaque_error() -> None:
    blob = envelope.seal(KEY, b"key material 0123456789abcdef!!", AAD)
    cases = [(KEY, b, AAD) for b in _tampered_blobs(blob)]
    cases += [(envelope.random_key(), blob, AAD), (KEY, blob, AAD + b"x"), (KEY, blob, b"")]
    messages = set()
    for key, candidate, aad in cases:
        with pytest.raises(SealedDataError) as info:
            envelope.unseal(key, candidate, aad)
        assert info.value.__cause__ is None and info.value.__suppress_context__
        assert info.value.exit_code == 4
        messages.add(str(info.value))
    assert messages == {"sealed data failed authentication"}


def test_unseal_errors_carry_no_secret() -> None:
    """Key, plaintext and passphrase appear nowhere in the error, its args, repr or formatted traceback."""
    key = envelope.random_key()
    secret = b"TOP-SECRET-KEY-MATERIAL-0123456789"
    blob = envelope.seal(key, secret, AAD)
    wrong = envelope.random_key()
    forms = [key, wrong, secret]
    needles = [
        v for f in forms for v in (f.hex(), base64.b64encode(f).decode(), repr(f), f.decode("latin-1"))
    ]
    for attempt in ((wrong, blob, AAD), (key, blob[:-1], AAD), (key, blob, b"other")):
        with pytest.raises(VaultError) as info:
            envelope.unseal(*attempt)
        text = "".join(traceback.format_exception(info.value)) + repr(info.value) + repr(info.value.args)
        assert not [n for n in needles if n in text]


def test_bad_key_size_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        envelope.seal(b"short", b"x", b"")
    with pytest.raises(ValueError, match="32 bytes"):
        envelope.unseal(b"short", b"x" * 40, b"")


def test_kdf_params_defaults_round_trip_and_validation() -> None:
    params = envelope.KdfParams.generate()
    assert (params.algorithm, params.memory_cost, params.iterations, params.lanes, params.length) == (
        "argon2id",
        64 * 1024,
        3,
        4,
        32,
    )
    assert len(params.salt) == 16
    assert envelope.KdfParams.from_dict(params.to_dict()) == params
    assert envelope.KdfParams.generate().salt != params.salt
    data = params.to_dict()
    for broken, message in [
        ({**data, "algorithm": "scrypt"}, "unsupported"),
        ({k: v for k, v in data.items() if k != "lanes"}, "lanes"),
        ({**data, "salt": "not base64!"}, "base64"),
        ({**data, "iterations": "3"}, "iterations"),
        ({**data, "iterations": 0}, "iterations"),
        ({**data, "memory_cost": 4}, "memory_cost"),
    ]:
        with pytest.raises(ValueError, match=message):
            envelope.KdfParams.from_dict(broken)


def test_derive_wrapping_key_is_deterministic_and_depends_on_every_input() -> None:
    params = envelope.KdfParams.generate(**FAST_KDF)
    key = envelope.derive_wrapping_key(b"correct horse", params)
    assert len(key) == 32
    assert envelope.derive_wrapping_key(b"correct horse", params) == key
    assert envelope.derive_wrapping_key(b"correct horsf", params) != key
    assert envelope.derive_wrapping_key(b"correct horse", envelope.KdfParams.generate(**FAST_KDF)) != key
    other_cost = envelope.KdfParams(salt=params.salt, memory_cost=128, iterations=1, lanes=1)
    assert envelope.derive_wrapping_key(b"correct horse", other_cost) != key


def test_keyslot_wrap_recipe() -> None:
    """The keyslot pattern K2 uses: Argon2id(passphrase) seals the KEK; a wrong passphrase fails opaquely."""
    params = envelope.KdfParams.generate(**FAST_KDF)
    kek = envelope.random_key()
    slot = envelope.seal(envelope.derive_wrapping_key(b"pass", params), kek, b"keyslot|alice")
    assert envelope.unseal(envelope.derive_wrapping_key(b"pass", params), slot, b"keyslot|alice") == kek
    with pytest.raises(SealedDataError):
        envelope.unseal(envelope.derive_wrapping_key(b"wrong", params), slot, b"keyslot|alice")


def test_hkdf_rfc5869_case_1_and_domain_separation() -> None:
    okm = envelope.hkdf_sha256(
        bytes.fromhex("0b" * 22),
        info=bytes.fromhex("f0f1f2f3f4f5f6f7f8f9"),
        length=42,
        salt=bytes.fromhex("000102030405060708090a0b0c"),
    )
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )
    assert envelope.hkdf_sha256(KEY, info=b"a", length=32) != envelope.hkdf_sha256(KEY, info=b"b", length=32)


def test_hmac_and_constant_time_check() -> None:
    tag = envelope.hmac_sha256(KEY, b"crop bytes")
    assert len(tag) == 32
    assert envelope.hmac_equal(KEY, b"crop bytes", tag)
    assert not envelope.hmac_equal(KEY, b"crop bytez", tag)
    assert not envelope.hmac_equal(KEY, b"crop bytes", tag[:16])
    assert not envelope.hmac_equal(KEY, b"crop bytes", b"")


def test_ed25519_rfc8032_test_1_and_round_trip() -> None:
    private = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    public = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    expected = bytes.fromhex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    assert envelope.public_key_of(private) == public
    assert envelope.sign(private, b"") == expected
    assert envelope.verify_signature(public, expected, b"")
    private_raw, public_raw = envelope.generate_signing_key()
    assert len(private_raw) == len(public_raw) == 32
    signature = envelope.sign(private_raw, b"tree head")
    assert envelope.verify_signature(public_raw, signature, b"tree head")
    assert not envelope.verify_signature(public_raw, signature, b"tree heae")
    assert not envelope.verify_signature(public, signature, b"tree head")


@pytest.mark.parametrize(
    ("public", "signature"),
    [
        (b"", b"\x00" * 64),
        (b"\x01" * 31, b"\x00" * 64),
        (b"\x00" * 32, b""),
        (b"\x00" * 32, b"\x00" * 65),
        (b"\xff" * 32, b"\xff" * 64),
    ],
)
def test_verify_signature_never_raises_on_malformed_input(public: bytes, signature: bytes) -> None:
    assert envelope.verify_signature(public, signature, b"message") is False
