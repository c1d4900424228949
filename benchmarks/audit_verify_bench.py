"""Benchmark: `verify_bundle` on a 100,000-entry audit bundle beside plain SHA-256 over the same entry bytes.

Builds a realistic bundle in a temporary folder (entries with actor, role, key handle, case, reason,
two digests and small details; a signed tree head every 1,000 entries and one at the end), then
times, best of ``--repeat`` runs each:
  baseline  read the bundle and SHA-256 every entry line (the least any verifier must do),
  verify    keyvault.verify.verify_bundle (default: chain, order, Merkle roots, head signatures),
  strict    verify_bundle(strict=True) (also validates every field and the canonical form).
Target (issue 3): verify within 5x of the baseline.

Usage: .venv/bin/python benchmarks/audit_verify_bench.py [--entries 100000] [--head-every 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from timing import best_of

from keyvault import envelope, merkle
from keyvault.audit import AuditEntry, TreeHead, chain_next, sign_tree_head, utc_timestamp, write_bundle
from keyvault.verify import verify_bundle


def build_bundle(path: Path, entries: int, head_every: int) -> bytes:
    """Write a bundle of ``entries`` entries; return the raw public key."""
    private_raw, public_raw = envelope.generate_signing_key()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    log: list[AuditEntry] = []
    previous = None
    for i in range(entries):
        previous = chain_next(
            previous,
            time=utc_timestamp(start + timedelta(milliseconds=37 * i)),
            actor=f"operator{i % 7}",
            role="operator",
            action="anonymize",
            outcome="ok",
            key_handle=f"kh_{i % 97:032x}",
            key_version=1 + i % 3,
            case_id=f"case-2026-{i % 50:04d}",
            reason="routine anonymization of evidence photo",
            digests={
                "input": hashlib.sha256(b"in%d" % i).hexdigest(),
                "output": hashlib.sha256(b"out%d" % i).hexdigest(),
            },
            details={"faces": i % 4, "backend": "ifadit"},
        )
        log.append(previous)
    leaves = [entry.leaf_hash() for entry in log]
    sizes = sorted({*range(head_every, entries + 1, head_every), entries})
    roots = merkle.prefix_roots(leaves, sizes)
    stamp = utc_timestamp(start)
    heads: list[TreeHead] = [sign_tree_head(private_raw, "vault-bench", s, roots[s], stamp) for s in sizes]
    write_bundle(path, "vault-bench", public_raw, log, heads)
    return public_raw


def hash_lines(path: Path) -> int:
    """Baseline: SHA-256 of every entry line's bytes (header and tree-head lines skipped)."""
    count = 0
    with path.open("rb") as handle:
        next(handle)
        for line in handle:
            if line.startswith(b'{"tree_head":'):
                break
            hashlib.sha256(line[:-1]).digest()
            count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--head-every", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "audit.jsonl"
        t0 = time.perf_counter()
        public_raw = build_bundle(path, args.entries, args.head_every)
        print(
            f"built {args.entries} entries ({path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f} s"
        )
        assert hash_lines(path) == args.entries
        report = verify_bundle(path, public_raw)
        assert report.entries == args.entries, report
        baseline = best_of(args.repeat, lambda: hash_lines(path))
        verify = best_of(args.repeat, lambda: verify_bundle(path, public_raw))
        strict = best_of(args.repeat, lambda: verify_bundle(path, public_raw, strict=True))
    print(f"tree heads: {report.tree_heads}")
    print(f"baseline  sha256 per entry line : {baseline:.3f} s")
    print(f"verify    verify_bundle         : {verify:.3f} s  ratio {verify / baseline:.2f}x (target <= 5x)")
    print(f"strict    verify_bundle(strict) : {strict:.3f} s  ratio {strict / baseline:.2f}x")


if __name__ == "__main__":
    main()
