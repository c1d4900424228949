"""The vault service under load and kill -9, small (issue 25): the machinery of benchmarks/service_load_bench.py.

A real `ifadit vault serve` child process on loopback, on a SQLite file and on a fresh PostgreSQL schema:
four clients issue keys, file requests, approve and read them back for a few seconds, then the service
is SIGKILLed twice under the same load, restarted, unsealed 2 of 3 and checked. Nothing acknowledged
may be lost, no audit entry may be duplicated, and `audit verify` must stay intact. The audit check
itself is shown to catch a loss, a duplicate and a repeated sequence number.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.service_load import (
    Ack,
    LoadPlan,
    Snapshot,
    approval_persisted,
    check_audit,
    key_persisted,
    request_persisted,
    run_service_load,
)
from keyvault.audit import AuditEntry, chain_next
from tests.keyvault.support import vault_url  # noqa: F401  (fixture: SQLite file or PostgreSQL schema)

PLAN = LoadPlan(clients=4, seconds=4.0, kills=2, seed=25, kill_gap_s=(0.3, 1.2))


@pytest.mark.timeout(120)
def test_nothing_acknowledged_is_lost_under_load_and_kill_9(vault_url: str, tmp_path: Path) -> None:  # noqa: F811
    report = run_service_load(vault_url, tmp_path, PLAN, say=lambda _line: None)

    assert report.problems == []
    assert [k.index for k in report.kills] == [1, 2] and all(k.problems == [] for k in report.kills)
    assert all(k.verify.startswith("audit log intact") for k in report.kills)
    assert report.verify.startswith("audit log intact")
    audit = report.audit
    assert audit.lost == [] and audit.duplicated == [] and audit.sequence == []
    for action in ("key.issue", "restore.request", "restore.approve"):
        assert 0 < audit.acked[action] <= audit.logged[action]
    assert report.load.count > 0 and report.crash.count > 0  # work went on between and after the kills


def _entry(previous: AuditEntry | None, action: str, actor: str, ref: str) -> AuditEntry:
    where = {"key_handle": ref} if action == "key.issue" else {"details": {"request": ref}}
    return chain_next(
        previous, time="2026-01-01T00:00:00.000000Z", actor=actor, action=action, outcome="ok", **where
    )


def _log(*rows: tuple[str, str, str]) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    for action, actor, ref in rows:
        entries.append(_entry(entries[-1] if entries else None, action, actor, ref))
    return entries


def test_the_audit_check_finds_a_loss_a_duplicate_and_a_repeated_sequence_number() -> None:
    acks = [Ack("issue_key", "admin", "kh_1", "C"), Ack("approve", "appr1", "rq_1", "C")]
    clean = _log(("key.issue", "admin", "kh_1"), ("restore.approve", "appr1", "rq_1"))
    assert check_audit(clean, acks).problems == []

    lost = check_audit(clean[:1], acks)
    assert lost.lost == ["restore.approve by appr1 of rq_1 acknowledged, not in the audit log"]

    twice = _log(
        ("key.issue", "admin", "kh_1"), ("restore.approve", "appr1", "rq_1"), ("key.issue", "admin", "kh_1")
    )
    assert check_audit(twice, acks).duplicated == ["key.issue by admin of kh_1: 2 entries"]

    repeated = check_audit([clean[0], clean[1], clean[1]], acks)
    assert repeated.sequence[0] == "sequence numbers repeated: [2]"
    assert check_audit([clean[1]], acks[1:]).sequence == ["sequence numbers are not 1..n without gaps"]


def test_the_restart_check_finds_a_missing_key_request_and_approval() -> None:
    empty = Snapshot(keys={}, requests={})
    assert (
        key_persisted(empty, Ack("issue_key", "admin", "kh_1", "C")) == "key kh_1 (issued by admin) is gone"
    )
    assert (
        request_persisted(empty, Ack("file_request", "inv1", "rq_1", "C"))
        == "request rq_1 (filed by inv1) is gone"
    )
    assert (
        approval_persisted(empty, Ack("approve", "appr1", "rq_1", "C")) == "approval of rq_1 by appr1 is gone"
    )
