"""Threat 4: several processes appending at once keep one gap-free hash chain that verifies (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

from keyvault import keys
from keyvault.vault import Vault
from keyvault.verify import verify_bundle
from tests.keyvault.support import ADMIN, ADMIN_PASS, issue_keys_worker, table_rows

PROCESSES = 4
ACTIONS = 12  # per process: 8 issues and 4 refused resumes


def test_concurrent_appends_keep_one_chain(vault: Vault, tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    workers = [
        context.Process(target=issue_keys_worker, args=(vault.url, ADMIN, ADMIN_PASS, ACTIONS, barrier))
        for _ in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    assert [worker.exitcode for worker in workers] == [0] * PROCESSES

    rows = sorted(table_rows(vault.url, "audit_entries"), key=lambda r: r["seq"])
    entries = [json.loads(r["canonical"]) for r in rows]
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    actions = [(e["action"], e["outcome"]) for e in entries[1:]]
    assert actions.count(("key.issue", "ok")) == PROCESSES * 8
    assert actions.count(("key.resume", "refused")) == PROCESSES * 4
    assert len(keys.list_keys(vault)) == PROCESSES * 8

    count = vault.export_audit(tmp_path / "bundle.jsonl")
    report = verify_bundle(tmp_path / "bundle.jsonl", vault.public_key, strict=True)
    assert report.entries == count == len(entries) + 1
    assert report.signed_size == count  # the export's own head covers everything
    assert (
        len(table_rows(vault.url, "tree_heads")) >= PROCESSES + 1
    )  # one per worker's close, one for the export
