"""Threat 4, crashes: a writer killed with SIGKILL in the middle of appending leaves a vault that opens and verifies."""

from __future__ import annotations

import json
import multiprocessing
import random
import time
from pathlib import Path

from keyvault import keys
from keyvault.vault import Vault, open_vault
from keyvault.verify import verify_bundle
from tests.keyvault.support import ADMIN, ADMIN_PASS, append_forever_worker, table_rows

KILLS = 3


def test_killed_writers_leave_a_consistent_vault(vault: Vault, tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    rng = random.Random(7)
    for _ in range(KILLS):
        ready = context.Event()
        worker = context.Process(target=append_forever_worker, args=(vault.url, ADMIN, ADMIN_PASS, ready))
        worker.start()
        assert ready.wait(timeout=120)
        time.sleep(rng.uniform(0.2, 0.6))
        worker.kill()
        worker.join()
        assert worker.exitcode == -9

    entries = [
        json.loads(r["canonical"])
        for r in sorted(table_rows(vault.url, "audit_entries"), key=lambda r: r["seq"])
    ]
    issued = [e["key_handle"] for e in entries if e["action"] == "key.issue" and e["outcome"] == "ok"]
    assert len(issued) > KILLS  # the writers did get work done before dying
    assert sorted(issued) == sorted(
        k.handle for k in keys.list_keys(vault)
    )  # no key without its entry, nor the reverse
    versions = table_rows(vault.url, "key_versions")
    assert len(versions) == len(issued) and all(v["material_sealed"] for v in versions)
    with open_vault(vault.url, ADMIN, ADMIN_PASS) as again:
        count = again.export_audit(tmp_path / "bundle.jsonl")
    assert verify_bundle(tmp_path / "bundle.jsonl", vault.public_key, strict=True).entries == count
