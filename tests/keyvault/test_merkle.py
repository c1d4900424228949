"""keyvault.merkle: roots against the RFC 6962 recursive definition, proofs for random trees, the frontier."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keyvault import merkle


def reference_root(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) exactly as RFC 6962 §2.1 writes it (recursive split at the largest power of two < n)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + reference_root(leaves[:k]) + reference_root(leaves[k:])).digest()


def leaves_of(n: int) -> list[bytes]:
    return [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def test_hash_domains() -> None:
    assert merkle.leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert merkle.node_hash(b"L" * 32, b"R" * 32) == hashlib.sha256(b"\x01" + b"L" * 32 + b"R" * 32).digest()
    assert merkle.root([]) == merkle.EMPTY_ROOT == hashlib.sha256(b"").digest()
    # a leaf is never confused with a node over the same bytes
    assert merkle.leaf_hash(b"L" * 32 + b"R" * 32) != merkle.node_hash(b"L" * 32, b"R" * 32)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 31, 32, 33, 100])
def test_root_matches_rfc_definition(n: int) -> None:
    leaves = leaves_of(n)
    assert merkle.root(leaves) == reference_root(leaves)


def test_root_of_100k_leaves_matches_frontier_and_prefix_roots() -> None:
    leaves = leaves_of(100_000)
    frontier = merkle.MerkleFrontier()
    for leaf in leaves:
        frontier.append(leaf)
    expected = merkle.root(leaves)
    assert frontier.root() == expected
    assert frontier.size == 100_000 and len(frontier.hashes) == bin(100_000).count("1")
    assert merkle.prefix_roots(leaves, [100_000])[100_000] == expected


@given(n=st.integers(min_value=1, max_value=70), data=st.data())
@settings(max_examples=60, deadline=None)
def test_every_inclusion_proof_verifies_and_tampering_fails(n: int, data: st.DataObject) -> None:
    leaves = leaves_of(n)
    root = merkle.root(leaves)
    index = data.draw(st.integers(min_value=0, max_value=n - 1))
    proof = merkle.inclusion_proof(leaves, index)
    assert merkle.verify_inclusion(leaves[index], index, n, proof, root)
    assert not merkle.verify_inclusion(merkle.leaf_hash(b"other"), index, n, proof, root)
    assert not merkle.verify_inclusion(leaves[index], index, n, [*proof, root], root)
    if n > 1:
        assert not merkle.verify_inclusion(leaves[index], (index + 1) % n, n, proof, root)
        assert not merkle.verify_inclusion(leaves[index], index, n, proof[:-1], root)
        position = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
        broken = list(proof)
        broken[position] = bytes([broken[position][0] ^ 1]) + broken[position][1:]
        assert not merkle.verify_inclusion(leaves[index], index, n, broken, root)


@given(new=st.integers(min_value=1, max_value=70), data=st.data())
@settings(max_examples=60, deadline=None)
def test_every_consistency_proof_verifies_and_tampering_fails(new: int, data: st.DataObject) -> None:
    old = data.draw(st.integers(min_value=1, max_value=new))
    leaves = leaves_of(new)
    old_root, new_root = merkle.root(leaves[:old]), merkle.root(leaves)
    proof = merkle.consistency_proof(leaves, old)
    assert merkle.verify_consistency(old, new, old_root, new_root, proof)
    if old < new:
        rewritten = [*leaves[: old - 1], merkle.leaf_hash(b"rewritten"), *leaves[old:]]
        assert not merkle.verify_consistency(old, new, old_root, merkle.root(rewritten), proof)
        assert not merkle.verify_consistency(old, new, new_root, new_root, proof)
        assert not merkle.verify_consistency(old, new, old_root, new_root, proof[:-1])
        position = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
        broken = list(proof)
        broken[position] = bytes([broken[position][0] ^ 1]) + broken[position][1:]
        assert not merkle.verify_consistency(old, new, old_root, new_root, broken)


@given(n=st.integers(min_value=0, max_value=200))
@settings(max_examples=40, deadline=None)
def test_frontier_restores_from_its_state_and_matches_root(n: int) -> None:
    leaves = leaves_of(n + 3)
    frontier = merkle.MerkleFrontier()
    for leaf in leaves[:n]:
        frontier.append(leaf)
    assert frontier.root() == merkle.root(leaves[:n])
    restored = merkle.MerkleFrontier(frontier.size, frontier.hashes)
    for leaf in leaves[n:]:
        restored.append(leaf)
    assert restored.root() == merkle.root(leaves)
    assert merkle.prefix_roots(leaves, range(n + 4)) == {s: merkle.root(leaves[:s]) for s in range(n + 4)}


def test_misuse_raises_value_error() -> None:
    leaves = leaves_of(4)
    with pytest.raises(ValueError, match="outside"):
        merkle.inclusion_proof(leaves, 4)
    with pytest.raises(ValueError, match="between 1"):
        merkle.consistency_proof(leaves, 0)
    with pytest.raises(ValueError, match="needs 2 hashes"):
        merkle.MerkleFrontier(3, [leaves[0]])
    with pytest.raises(ValueError, match="32 bytes"):
        merkle.MerkleFrontier().append(b"short")
    with pytest.raises(ValueError, match="between 0 and 4"):
        merkle.prefix_roots(leaves, [5])


def test_verifiers_reject_malformed_hashes_without_raising() -> None:
    leaves = leaves_of(5)
    proof = merkle.inclusion_proof(leaves, 2)
    assert not merkle.verify_inclusion(leaves[2][:31], 2, 5, proof, merkle.root(leaves))
    assert not merkle.verify_inclusion(leaves[2], 2, 5, [proof[0] + b"\x00", *proof[1:]], merkle.root(leaves))
    assert not merkle.verify_inclusion(leaves[2], -1, 5, proof, merkle.root(leaves))
    consistency = merkle.consistency_proof(leaves, 3)
    assert not merkle.verify_consistency(
        3, 5, merkle.root(leaves[:3]), merkle.root(leaves), [b"", *consistency]
    )
