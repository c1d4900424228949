"""Audit excerpts: filters, what an excerpt shows and hides, offline verification, located tampering, --since."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from keyvault import AuditFilter, auditor, keys
from keyvault.anchor import bundle_leaves, check_bundle_since
from keyvault.audit import GENESIS_HASH, AuditEntry, TreeHead
from keyvault.errors import AuditVerificationError
from keyvault.excerpt import bracketing_heads, parse_stub, stub_line
from keyvault.vault import Vault
from keyvault.verify import verify_bundle
from tests.keyvault.support import add_user

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _entry(seq: int, **values: object) -> AuditEntry:
    fields: dict[str, object] = {
        "time": "2026-12-01T10:00:00.000000Z",
        "actor": "olga",
        "role": "operator",
        "action": "anonymize",
        "outcome": "ok",
        "case_id": "C-1",
    }
    fields.update(values)
    return AuditEntry(seq=seq, prev_hash=GENESIS_HASH, **fields)  # type: ignore[arg-type]


def test_filter_matches_every_set_criterion() -> None:
    entry = _entry(1, action="key.revoke", actor="admin")
    assert AuditFilter().matches(entry)
    assert AuditFilter(case="C-1", actors=("bob", "admin"), actions=("key",)).matches(entry)
    assert not AuditFilter(case="C-2").matches(entry)
    assert not AuditFilter(actions=("ke",)).matches(entry)  # a group is a whole dotted prefix
    assert AuditFilter(actions=("key.revoke",)).matches(entry)
    assert AuditFilter(since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=2)).matches(entry)
    assert not AuditFilter(until=T0 + timedelta(hours=1)).matches(entry)  # the end is exclusive
    with pytest.raises(ValueError, match="after its start"):
        AuditFilter(since=T0, until=T0)
    with pytest.raises(ValueError, match="timezone-aware"):
        AuditFilter(since=datetime(2026, 1, 1))


def test_filter_round_trips_through_the_header() -> None:
    where = AuditFilter("C-1", ("olga",), ("restore",), T0, T0 + timedelta(days=1))
    assert AuditFilter.from_dict(json.loads(json.dumps(where.to_dict()))) == where
    assert where.describe() == (
        "case C-1, actor olga, action restore, from 2026-12-01T09:00:00Z, before 2026-12-02T09:00:00Z"
    )
    with pytest.raises(ValueError, match="exactly"):
        AuditFilter.from_dict({"case": "C-1"})


def test_stub_line_round_trips() -> None:
    entry = _entry(1)
    seq, prev, leaf = parse_stub(stub_line(entry))
    assert (seq, prev.decode(), leaf) == (1, GENESIS_HASH, entry.leaf_hash())
    with pytest.raises(ValueError, match="hidden entry"):
        parse_stub(stub_line(entry) + b" ")


def test_bracketing_heads_keep_the_heads_around_each_shown_entry() -> None:
    heads = [TreeHead("v", size, "0" * 64, "2026-12-01T10:00:00.000000Z", b"") for size in (2, 5, 9, 12)]
    assert [h.size for h in bracketing_heads(heads, [7])] == [5, 9, 12]
    assert [h.size for h in bracketing_heads(heads, [1, 5])] == [2, 5, 12]


def _case_log(vault: Vault) -> None:
    for case in ("C-1", "C-2", "C-1", "C-2"):
        handle = keys.issue(vault, case, "test").handle
    keys.revoke(vault, handle, reason="done")  # a C-2 key


def test_case_excerpt_shows_its_case_and_verifies(vault: Vault, tmp_path: Path) -> None:
    _case_log(vault)
    with add_user(vault, "audrey", "auditor") as audrey:
        shown = audrey.export_audit(tmp_path / "c1.jsonl", AuditFilter(case="C-1"))
        audrey.export_audit(tmp_path / "whole.jsonl")
    lines = (tmp_path / "c1.jsonl").read_text().splitlines()
    entries = [json.loads(line) for line in lines[1:] if line.startswith('{"action"')]
    assert shown == 3 == len(entries)  # two key issues and the export itself
    assert [e["action"] for e in entries] == ["key.issue", "key.issue", "audit.export"]
    assert "C-2" not in (tmp_path / "c1.jsonl").read_text()  # other cases leave no readable trace
    report = verify_bundle(tmp_path / "c1.jsonl", vault.public_key)
    whole = verify_bundle(tmp_path / "whole.jsonl", vault.public_key)
    assert (report.shown, report.where) == (3, AuditFilter(case="C-1"))
    assert report.entries == whole.entries - 1 and "3 of" in report.summary()
    excerpt_leaves = bundle_leaves(tmp_path / "c1.jsonl").leaves  # the same log, one export shorter
    assert excerpt_leaves == bundle_leaves(tmp_path / "whole.jsonl").leaves[: report.entries]


def test_excerpt_tampering_is_located(vault: Vault, tmp_path: Path) -> None:
    _case_log(vault)
    vault.export_audit(tmp_path / "c1.jsonl", AuditFilter(case="C-1"))
    lines = (tmp_path / "c1.jsonl").read_bytes().splitlines(keepends=True)
    shown = next(i for i, line in enumerate(lines) if b'"case_id":"C-1"' in line)
    seq = json.loads(lines[shown])["seq"]

    edited = list(lines)
    edited[shown] = edited[shown].replace(b'"outcome":"ok"', b'"outcome":"refused"')
    (tmp_path / "edited.jsonl").write_bytes(b"".join(edited))
    with pytest.raises(AuditVerificationError, match=f"entry {seq} was altered") as caught:
        verify_bundle(tmp_path / "edited.jsonl")
    assert caught.value.seq == seq

    hidden = next(i for i, line in enumerate(lines) if line.startswith(b'{"leaf"') and i > shown)
    revealed = list(lines)
    revealed[hidden] = lines[shown]  # a shown line moved over a hidden one
    (tmp_path / "moved.jsonl").write_bytes(b"".join(revealed))
    with pytest.raises(AuditVerificationError, match="out of order|appears again"):
        verify_bundle(tmp_path / "moved.jsonl")

    relabelled = list(lines)
    relabelled[0] = relabelled[0].replace(b'"case":"C-1"', b'"case":"C-2"')
    (tmp_path / "relabelled.jsonl").write_bytes(b"".join(relabelled))
    with pytest.raises(AuditVerificationError, match="does not match the excerpt's filter"):
        verify_bundle(tmp_path / "relabelled.jsonl")


def test_excerpt_extends_a_kept_checkpoint(vault: Vault, tmp_path: Path) -> None:
    _case_log(vault)
    kept = auditor.checkpoint(vault)
    keys.issue(vault, "C-1", "later")
    vault.export_audit(tmp_path / "c1.jsonl", AuditFilter(case="C-1"))
    report = check_bundle_since(tmp_path / "c1.jsonl", verify_bundle(tmp_path / "c1.jsonl"), [kept])
    assert report.since is not None and report.since.newest_size < report.entries


def test_show_filters_by_actor_action_and_time(vault: Vault) -> None:
    _case_log(vault)
    revokes = auditor.entries(vault, where=AuditFilter(actions=("key.revoke",)))
    assert [e.action for e in revokes] == ["key.revoke"]
    assert len(auditor.entries(vault, where=AuditFilter(case="C-2", actions=("key",)))) == 3
    assert auditor.entries(vault, where=AuditFilter(actors=("nobody",))) == []
    future = datetime.now(UTC) + timedelta(days=1)
    assert auditor.entries(vault, where=AuditFilter(since=future)) == []
    with pytest.raises(ValueError, match="not both"):
        auditor.entries(vault, case="C-1", where=AuditFilter())
