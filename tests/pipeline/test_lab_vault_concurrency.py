"""A shared lab vault under load: 8 processes issue keys, anonymize and restore at once (PostgreSQL and SQLite WAL).

Each process is a whole analyst session (its own vault connection, backend and detector): per round it
issues a key, anonymizes a small real photo under it with sealed originals, and restores it exactly. The
audit log must stay one gap-free hash chain whose export verifies (Merkle tree heads included), with every
action of every process in it.
"""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ifadit.media.image import read_image, write_image
from keyvault import access
from keyvault.vault import Vault
from keyvault.verify import verify_bundle
from tests.keyvault.support import cheap_kdf, table_rows

PROCESSES = 8
ROUNDS = 2
USER = "lab"
pytestmark = pytest.mark.slow  # 8 spawned sessions each import the pipeline: ~35 s per database on 2 cores  # admin + operator + investigator, so one session can do all three


def analyst_worker(url: str, index: int, photo: str, out: str, barrier: Any) -> None:
    """Process body: unlock, wait for the others, then ROUNDS x (issue a key, anonymize, restore exactly)."""
    from ifadit.pipeline.anonymize import AnonymizeOptions
    from ifadit.pipeline.batch import anonymize_paths
    from ifadit.pipeline.restore import restore_path
    from ifadit.pipeline.restore_plan import RestoreOptions
    from keyvault import keys
    from keyvault.vault import open_vault

    original = read_image(Path(photo))
    with open_vault(url, USER, USER.encode()) as session:
        barrier.wait(timeout=120)
        for round_ in range(ROUNDS):
            case = f"C-{index}-{round_}"
            handle = keys.issue(session, case, "load test").handle
            anonymized = Path(out) / f"{index}-{round_}.png"
            options = AnonymizeOptions(backend="blur", seal_original=True)
            report = anonymize_paths(session, [Path(photo)], anonymized, options, key=handle, case=case)
            assert report.items[0].faces == 1 and not report.failed
            restored = Path(out) / f"{index}-{round_}.restored.png"
            restore_path(
                session, anonymized, restored, RestoreOptions(case=case, reason="load test", exact=True)
            )
            assert np.array_equal(read_image(restored), original)


def test_analysts_at_once_keep_one_verifiable_chain(
    vault: Vault, tmp_path: Path, astronaut: np.ndarray
) -> None:
    access.set_policy(vault, require_approval=False)  # approvals are tested elsewhere; here: raw concurrency
    access.add_user(vault, USER, ["admin", "operator", "investigator"], USER.encode(), kdf=cheap_kdf())
    photo = tmp_path / "face.png"
    write_image(photo, astronaut[0:240, 120:360])  # 240 x 240, one face
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    workers = [
        context.Process(target=analyst_worker, args=(vault.url, index, str(photo), str(tmp_path), barrier))
        for index in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=500)
    assert [worker.exitcode for worker in workers] == [0] * PROCESSES

    rows = sorted(table_rows(vault.url, "audit_entries"), key=lambda r: r["seq"])
    entries = [json.loads(r["canonical"]) for r in rows]
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))  # gap-free
    ok = [e["action"] for e in entries if e["outcome"] == "ok"]
    done = PROCESSES * ROUNDS
    assert ok.count("key.issue") == ok.count("anonymize") == ok.count("restore") == done  # nothing lost
    assert not [e for e in entries if e["outcome"] != "ok"]

    count = vault.export_audit(tmp_path / "bundle.jsonl")
    report = verify_bundle(tmp_path / "bundle.jsonl", vault.public_key, strict=True)
    assert report.entries == count == len(entries) + 1
    assert report.signed_size == count  # the export's signed tree head covers every entry
