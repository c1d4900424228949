"""Known-answer tests: the published vectors in ../shared/vectors, read in place, against our own wrappers.

- RFC 6962 (transparency-dev/merkle testdata): every inclusion and consistency case reproduces
  its expected outcome (happy paths verify, modified/garbage proofs are rejected), and our proof
  *generators* rebuild every happy-path proof from the RFC 6962 reference leaves. The
  ``subtree*`` folders test subtree proofs (start/end ranges), an extension we do not implement.
- Wycheproof: AES-GCM (256-bit key, 96-bit IV, 128-bit tag: the only shape our recipe seals),
  Ed25519, HKDF-SHA256 and HMAC-SHA256. ``valid`` cases must reproduce exactly, ``invalid`` ones
  must be rejected. ``acceptable`` cases (legal but discouraged inputs) may go either way: they are
  run (so they must not crash) without asserting the outcome. The current files hold none; the
  per-file counts asserted below change if an update adds some, so they get looked at.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keyvault import envelope, merkle
from keyvault.errors import SealedDataError

# The leaves the RFC 6962 test data is built from (transparency-dev/merkle testonly/constants.go).
RFC6962_LEAVES = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]


def _b64(text: str) -> bytes:
    return base64.b64decode(text) if text else b""


def _cases(folder: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    files = sorted(folder.rglob("*.json"))
    assert files, f"no vectors under {folder}"
    for path in files:
        yield path, json.loads(path.read_text())


def _wycheproof(shared_dir: Path, name: str) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    data = json.loads((shared_dir / "vectors" / "wycheproof" / name).read_text())
    for group in data["testGroups"]:
        for test in group["tests"]:
            yield group, test


def test_rfc6962_inclusion_vectors(shared_dir: Path) -> None:
    outcomes = {True: 0, False: 0}
    for path, case in _cases(shared_dir / "vectors" / "rfc6962" / "inclusion"):
        proof = [_b64(h) for h in case["proof"] or []]
        ok = merkle.verify_inclusion(
            _b64(case["leafHash"]), case["leafIdx"], case["treeSize"], proof, _b64(case["root"])
        )
        assert ok is not case["wantErr"], f"{path}: {case['desc']}"
        outcomes[ok] += 1
    assert outcomes[True] >= 5 and outcomes[False] >= 50


def test_rfc6962_consistency_vectors(shared_dir: Path) -> None:
    outcomes = {True: 0, False: 0}
    for path, case in _cases(shared_dir / "vectors" / "rfc6962" / "consistency"):
        proof = [_b64(h) for h in case["proof"] or []]
        ok = merkle.verify_consistency(
            case["size1"], case["size2"], _b64(case["root1"]), _b64(case["root2"]), proof
        )
        assert ok is not case["wantErr"], f"{path}: {case['desc']}"
        outcomes[ok] += 1
    assert outcomes[True] >= 5 and outcomes[False] >= 50


def test_rfc6962_proof_generation_reproduces_happy_paths(shared_dir: Path) -> None:
    leaves = [merkle.leaf_hash(bytes.fromhex(x)) for x in RFC6962_LEAVES]
    root = shared_dir / "vectors" / "rfc6962"
    checked = 0
    for path, case in _cases(root / "inclusion"):
        if case["desc"] == "happy path" and case["treeSize"] <= len(leaves):
            tree = leaves[: case["treeSize"]]
            assert merkle.root(tree) == _b64(case["root"]), path
            assert merkle.inclusion_proof(tree, case["leafIdx"]) == [_b64(h) for h in case["proof"] or []], (
                path
            )
            checked += 1
    for path, case in _cases(root / "consistency"):
        if case["desc"] == "happy path":
            tree = leaves[: case["size2"]]
            assert merkle.root(tree) == _b64(case["root2"]), path
            assert merkle.root(leaves[: case["size1"]]) == _b64(case["root1"]), path
            assert merkle.consistency_proof(tree, case["size1"]) == [_b64(h) for h in case["proof"] or []], (
                path
            )
            checked += 1
    assert checked == 10


def test_wycheproof_aes_gcm(shared_dir: Path) -> None:
    counts = {"valid": 0, "invalid": 0}
    for group, test in _wycheproof(shared_dir, "aes_gcm_test.json"):
        if (group["keySize"], group["ivSize"], group["tagSize"]) != (256, 96, 128):
            continue
        key, iv, aad, msg = (bytes.fromhex(test[k]) for k in ("key", "iv", "aad", "msg"))
        sealed = bytes.fromhex(test["ct"] + test["tag"])
        blob = bytes([envelope.SEAL_VERSION]) + iv + sealed
        label = f"tcId {test['tcId']} {test['flags']}"
        if test["result"] == "valid":
            assert envelope.aes_gcm_encrypt(key, iv, msg, aad) == sealed, label
            assert envelope.aes_gcm_decrypt(key, iv, sealed, aad) == msg, label
            assert envelope.unseal(key, blob, aad) == msg, label
        elif test["result"] == "invalid":
            with pytest.raises(SealedDataError):
                envelope.aes_gcm_decrypt(key, iv, sealed, aad)
            with pytest.raises(SealedDataError):
                envelope.unseal(key, blob, aad)
        counts[test["result"]] = counts.get(test["result"], 0) + 1
    assert counts["valid"] == 39 and counts["invalid"] == 27


def test_wycheproof_ed25519(shared_dir: Path) -> None:
    counts: dict[str, int] = {}
    for group, test in _wycheproof(shared_dir, "ed25519_test.json"):
        public = bytes.fromhex(group["publicKey"]["pk"])
        ok = envelope.verify_signature(public, bytes.fromhex(test["sig"]), bytes.fromhex(test["msg"]))
        if test["result"] != "acceptable":
            assert ok is (test["result"] == "valid"), f"tcId {test['tcId']} {test['comment']} {test['flags']}"
        counts[test["result"]] = counts.get(test["result"], 0) + 1
    assert counts == {"valid": 88, "invalid": 63}


def test_wycheproof_hkdf_sha256(shared_dir: Path) -> None:
    counts: dict[str, int] = {}
    for _, test in _wycheproof(shared_dir, "hkdf_sha256_test.json"):
        ikm, salt, info = (bytes.fromhex(test[k]) for k in ("ikm", "salt", "info"))
        if test["result"] == "valid":
            assert (
                envelope.hkdf_sha256(ikm, info=info, length=test["size"], salt=salt).hex() == test["okm"]
            ), test["tcId"]
        elif test["result"] == "invalid":
            with pytest.raises(ValueError):
                envelope.hkdf_sha256(ikm, info=info, length=test["size"], salt=salt)
        counts[test["result"]] = counts.get(test["result"], 0) + 1
    assert counts == {"valid": 83, "invalid": 3}


def test_wycheproof_hmac_sha256(shared_dir: Path) -> None:
    counts: dict[str, int] = {}
    for group, test in _wycheproof(shared_dir, "hmac_sha256_test.json"):
        key, msg, tag = (bytes.fromhex(test[k]) for k in ("key", "msg", "tag"))
        full = envelope.hmac_sha256(key, msg)
        truncated = full[: group["tagSize"] // 8]
        valid = test["result"] == "valid"
        if test["result"] != "acceptable":
            assert (truncated == tag) is valid, test["tcId"]
            # hmac_equal accepts only full 32-byte tags: truncated ones are always refused
            assert envelope.hmac_equal(key, msg, tag) is (valid and group["tagSize"] == 256), test["tcId"]
        counts[test["result"]] = counts.get(test["result"], 0) + 1
    assert counts == {"valid": 66, "invalid": 108}
