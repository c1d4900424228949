"""Benchmark: vault operations per second after unlock, each beside a baseline measured in the same run.

  unlock        open_vault with the product's default Argon2id parameters   vs  one bare Argon2id derivation
  key issue     keys.issue (seal + 2 rows + audit entry, one transaction)   vs  raw SQLite inserts of the same
                                                                                 sealed bytes, one commit each
  unseal        keys.unseal_for_use (audited action + AES-GCM open)         vs  bare AES-256-GCM open of the blob
  audit append  an empty audited action (role check + chained entry)        vs  raw SQLite inserts of the same
                                                                                 canonical bytes, one commit each
  (PostgreSQL)  the audit append again on the lab server when reachable     vs  raw inserts there
  N writers     audit appends/s of N processes appending at once (one chain) vs  the same with 1 writer

Same pragmas for the raw SQLite baselines (WAL, synchronous=NORMAL). Target (issue 3): >= 1,000
audit appends/s on SQLite. `audit verify` on 100,000 entries is measured in audit_verify_bench.py.

Usage: .venv/bin/python benchmarks/vault_bench.py [--issues 300] [--unseals 1000] [--appends 3000] [--writers 8]
       [--pg URL]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from keyvault import access, keys
from keyvault.envelope import KdfParams, derive_wrapping_key, random_key, seal, unseal
from keyvault.schema import AuditEntryRow
from keyvault.vault import Vault, open_vault

PASS = b"benchmark passphrase"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def rate(count: int, action: Callable[[int], object]) -> float:
    """Operations per second of ``action(i)`` for i in range(count)."""
    start = time.perf_counter()
    for index in range(count):
        action(index)
    return count / (time.perf_counter() - start)


def row(name: str, measured: float, baseline: float, unit: str, baseline_name: str) -> None:
    print(
        f"{name:<26} {measured:>12,.1f} {unit:<8} {baseline_name:<34} {baseline:>12,.1f} {unit:<8} "
        f"ratio {baseline / measured if unit == 'op/s' else measured / baseline:>7.2f}x"
    )


def raw_sqlite_inserts(path: Path, blobs: list[bytes]) -> float:
    """Inserts/s of ``blobs`` into a bare SQLite table, one transaction each (the vault's pragmas)."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = NORMAL")
    connection.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, data BLOB NOT NULL)")

    def insert(index: int) -> None:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("INSERT INTO t (seq, data) VALUES (?, ?)", (index, blobs[index]))
        connection.execute("COMMIT")

    result = rate(len(blobs), insert)
    connection.close()
    return result


def audit_blobs(vault: Vault, count: int) -> list[bytes]:
    """The canonical bytes of the newest ``count`` entries (for a same-bytes baseline)."""
    with vault.transaction() as session:
        rows = session.query(AuditEntryRow.canonical).order_by(AuditEntryRow.seq.desc()).limit(count).all()
    return [bytes(r[0]) for r in rows]


def bench_sqlite(folder: Path, issues: int, unseals: int, appends: int, writers: int) -> None:
    url = f"sqlite:///{folder / 'vault.sqlite3'}"
    kdf = KdfParams.generate()  # the product default: measured, never weakened here
    Vault.init(url, "admin", PASS, kdf=kdf).close()
    start = time.perf_counter()
    vault = open_vault(url, "admin", PASS)
    unlock = time.perf_counter() - start
    start = time.perf_counter()
    derive_wrapping_key(PASS, kdf)
    derive = time.perf_counter() - start
    row("unlock (default Argon2id)", unlock * 1000, derive * 1000, "ms", "bare Argon2id derivation")

    handles: list[str] = []
    issued = rate(issues, lambda i: handles.append(keys.issue(vault, f"C-{i % 10}", "bench").handle))
    sealed = [seal(random_key(), random_key(), b"x" * 120) for _ in range(issues)]
    row(
        "key issue",
        issued,
        raw_sqlite_inserts(folder / "raw_issue.sqlite3", sealed),
        "op/s",
        "raw SQLite insert (same bytes)",
    )

    access.set_policy(vault, require_approval=False)
    access.add_user(vault, "ops", ["operator", "investigator"], PASS, kdf=KdfParams.generate(8192, 1, 1))
    user = open_vault(url, "ops", PASS)
    unsealed = rate(
        unseals, lambda i: keys.unseal_for_use(user, handles[i % len(handles)], purpose="anonymize")
    )
    kek, aad = random_key(), b"a" * 120
    blob = seal(kek, random_key(), aad)
    row(
        "unseal for use",
        unsealed,
        rate(unseals, lambda i: unseal(kek, blob, aad)),
        "op/s",
        "bare AES-256-GCM open",
    )

    def append(_: int) -> None:
        with vault.action("bench.append", role="admin"):
            pass

    appended = rate(appends, append)
    blobs = audit_blobs(vault, appends)
    row(
        "audit append (SQLite)",
        appended,
        raw_sqlite_inserts(folder / "raw_audit.sqlite3", blobs),
        "op/s",
        "raw SQLite insert (same bytes)",
    )
    target = "meets" if appended >= 1000 else "MISSES"
    print(f"{'':<26} target >= 1,000 appends/s on SQLite: {target}")
    user.close()
    vault.close()
    bench_writers("SQLite", url, writers, appends)


def _writer(url: str, count: int, barrier: Any, times: Any) -> None:
    with open_vault(url, "admin", PASS) as vault:
        barrier.wait(timeout=120)
        start = time.time()
        for _ in range(count):
            with vault.action("bench.append", role="admin"):
                pass
        times.put((start, time.time()))


def concurrent_rate(url: str, writers: int, total: int) -> float:
    """Appends/s of ``writers`` processes sharing ``total`` appends, from the first start to the last finish."""
    context = multiprocessing.get_context("spawn")
    barrier, times = context.Barrier(writers), context.Queue()
    processes = [
        context.Process(target=_writer, args=(url, total // writers, barrier, times)) for _ in range(writers)
    ]
    for process in processes:
        process.start()
    spans = [times.get(timeout=600) for _ in processes]
    for process in processes:
        process.join()
    return writers * (total // writers) / (max(end for _, end in spans) - min(start for start, _ in spans))


def bench_writers(name: str, url: str, writers: int, total: int) -> None:
    one = concurrent_rate(url, 1, total)
    many = concurrent_rate(url, writers, total)
    row(f"{writers} writers ({name})", many, one, "op/s", "1 writer, same appends")


def bench_postgres(pg_url: str, appends: int, writers: int) -> None:
    schema = f"bench_{int(time.time())}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:  # the lab server is optional for this benchmark
        print(f"PostgreSQL skipped: {pg_url} unreachable ({type(exc).__name__})")
        return
    url = f"{pg_url}?options=-csearch_path%3D{schema}"
    try:
        vault = Vault.init(url, "admin", PASS, kdf=KdfParams.generate(8192, 1, 1))

        def append(_: int) -> None:
            with vault.action("bench.append", role="admin"):
                pass

        appended = rate(appends, append)
        blobs = audit_blobs(vault, appends)
        vault.close()
        raw = create_engine(url)
        with raw.begin() as connection:
            connection.execute(text("CREATE TABLE raw_t (seq INTEGER PRIMARY KEY, data BYTEA NOT NULL)"))

        def insert(index: int) -> None:
            with raw.begin() as connection:
                connection.execute(text("INSERT INTO raw_t VALUES (:s, :d)"), {"s": index, "d": blobs[index]})

        row("audit append (PostgreSQL)", appended, rate(len(blobs), insert), "op/s", "raw PostgreSQL insert")
        raw.dispose()
        bench_writers("PostgreSQL", url, writers, appends)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--issues", type=int, default=300, help="keys to issue")
    parser.add_argument("--unseals", type=int, default=1000, help="unseal operations")
    parser.add_argument("--appends", type=int, default=3000, help="audit appends")
    parser.add_argument("--writers", type=int, default=8, help="concurrent writer processes")
    parser.add_argument("--pg", default=DEFAULT_PG, help="PostgreSQL URL ('' to skip)")
    args = parser.parse_args()
    print(f"{'measure':<26} {'measured':>12} {'unit':<8} {'baseline':<34} {'value':>12} {'unit':<8} ratio")
    with tempfile.TemporaryDirectory(prefix="ifadit-bench-") as folder:
        bench_sqlite(Path(folder), args.issues, args.unseals, args.appends, args.writers)
    if args.pg:
        bench_postgres(args.pg, args.appends, args.writers)


if __name__ == "__main__":
    main()
