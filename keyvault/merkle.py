"""RFC 6962 / RFC 9162 Merkle tree over audit entries: hashes, roots, inclusion and consistency proofs.

Pure functions on bytes (SHA-256, 32-byte hashes); leaf and node hashes are domain-separated:
``leaf = SHA-256(0x00 ‖ data)``, ``node = SHA-256(0x01 ‖ left ‖ right)``, and the empty tree's
root is ``SHA-256("")``. Proof verification follows RFC 9162 §2.1.3.2 and §2.1.4.2 and returns
False (never raises) for any malformed proof, so callers turn it into their own located error.

``MerkleFrontier`` keeps only the roots of the perfect subtrees along the right edge (one per set
bit of the size), so appending a leaf and reading the root cost O(log n); a vault keeps one per log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

HASH_BYTES = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 ‖ data): the hash of one leaf (one audit entry's canonical bytes)."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 ‖ left ‖ right): the hash of an interior node."""
    return _sha256(b"\x01" + left + right).digest()


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """Merkle tree hash of the given leaf hashes (iterative, level by level; O(n) hashes)."""
    level = list(leaf_hashes)
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        paired = [_sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])  # RFC 6962: an odd last node moves up unchanged
        level = paired
    return level[0]


def prefix_roots(leaf_hashes: Sequence[bytes], sizes: Iterable[int]) -> dict[int, bytes]:
    """Roots of the first ``size`` leaves for each requested size, in O(n + k log n) hashes.

    Builds every complete, aligned perfect subtree once; the root of a prefix of size S then folds
    the subtrees named by S's set bits (largest first, leftmost), as ``MerkleFrontier`` does.
    """
    wanted = set(sizes)
    if any(not 0 <= s <= len(leaf_hashes) for s in wanted):
        raise ValueError(f"prefix sizes must lie between 0 and {len(leaf_hashes)}")
    levels = [list(leaf_hashes)]
    while len(levels[-1]) > 1:
        below = levels[-1]
        levels.append(
            [_sha256(b"\x01" + below[i] + below[i + 1]).digest() for i in range(0, len(below) - 1, 2)]
        )
    result: dict[int, bytes] = {}
    for size in wanted:
        parts, offset = [], 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                parts.append(levels[level][offset >> level])
                offset += 1 << level
        r = parts[-1] if parts else EMPTY_ROOT
        for h in reversed(parts[:-1]):
            r = node_hash(h, r)
        result[size] = r
    return result


def _split(n: int) -> int:
    """The largest power of two strictly below n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """Audit path of leaf ``index`` (0-based) in the tree of all ``leaf_hashes``, deepest sibling first."""
    size = len(leaf_hashes)
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            path.append(root(leaf_hashes[lo + k : hi]))
            hi = lo + k
        else:
            path.append(root(leaf_hashes[lo : lo + k]))
            lo += k
    path.reverse()
    return path


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """RFC 6962 SUBPROOF(old_size, leaves, true): proves the first ``old_size`` leaves are a prefix."""
    size = len(leaf_hashes)
    if not 0 < old_size <= size:
        raise ValueError(f"old size {old_size} must be between 1 and the tree size {size}")
    path: list[bytes] = []
    lo, hi, m, complete = 0, size, old_size, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            path.append(root(leaf_hashes[lo + k : hi]))
            hi = lo + k
        else:
            path.append(root(leaf_hashes[lo : lo + k]))
            lo, m, complete = lo + k, m - k, False
    if not complete:
        path.append(root(leaf_hashes[lo:hi]))
    path.reverse()
    return path


def _well_formed(hashes: Sequence[bytes]) -> bool:
    return all(isinstance(h, bytes) and len(h) == HASH_BYTES for h in hashes)


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], expected_root: bytes
) -> bool:
    """True when ``proof`` shows leaf hash ``leaf`` at 0-based ``index`` of a tree of ``size`` with ``expected_root``."""
    if not 0 <= index < size or not _well_formed([leaf, *proof]):
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == expected_root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """True when ``proof`` shows the tree (old_size, old_root) is a prefix of (new_size, new_root).

    Edge cases follow the published transparency-dev vectors: equal sizes need an empty proof and
    equal roots (the empty-tree root when both are 0); an old size of 0 proves nothing and is rejected.
    """
    if not 0 <= old_size <= new_size:
        return False
    if old_size == new_size:
        if proof:
            return False
        return old_root == new_root and (old_size > 0 or old_root == EMPTY_ROOT)
    if old_size == 0 or not proof or not _well_formed(proof):
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is itself a node of the new tree
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


class MerkleFrontier:
    """Incremental RFC 6962 root: the perfect-subtree roots along the tree's right edge, largest first.

    ``MerkleFrontier(size, hashes)`` restores a saved state (``frontier.size``, ``frontier.hashes``);
    there is one hash per set bit of ``size``.
    """

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0 or len(hashes) != size.bit_count() or not _well_formed(hashes):
            raise ValueError(f"a frontier of size {size} needs {max(size, 0).bit_count()} hashes of 32 bytes")
        self._size = size
        self._hashes = list(hashes)

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def hashes(self) -> list[bytes]:
        """Roots of the perfect subtrees, left (largest) to right (smallest); a copy."""
        return list(self._hashes)

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash: O(log n) node hashes (merges equal-sized subtrees like a binary counter)."""
        if not isinstance(leaf, bytes) or len(leaf) != HASH_BYTES:
            raise ValueError("a leaf hash must be 32 bytes")
        h, size = leaf, self._size
        while size & 1:
            h = node_hash(self._hashes.pop(), h)
            size >>= 1
        self._hashes.append(h)
        self._size += 1

    def root(self) -> bytes:
        """The RFC 6962 root of all leaves appended so far (EMPTY_ROOT when none)."""
        if not self._hashes:
            return EMPTY_ROOT
        r = self._hashes[-1]
        for h in reversed(self._hashes[:-1]):
            r = node_hash(h, r)
        return r
