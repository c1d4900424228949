"""The case report's content without a browser: sentences, escaping, located faults, sources and counts."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from keyvault import AuditFilter, access, auditor, keys
from keyvault.audit import GENESIS_HASH, AuditEntry
from keyvault.errors import PermissionDenied
from keyvault.records import RequestFile
from keyvault.report import Anchors, build_from_bundle, build_from_vault, render_html
from keyvault.report.events import sentence
from keyvault.vault import Vault
from tests.keyvault.support import add_user

ATTACK = "<script>alert(1)</script>"
NOW = datetime(2026, 12, 7, 14, 0, tzinfo=UTC)


def _story(vault: Vault) -> str:
    """A key for C-1 whose purpose is markup, a request whose reason is markup, an approval, other cases."""
    keys.issue(vault, "C-2", "another case")
    handle = keys.issue(vault, "C-1", f"release {ATTACK}").handle
    with add_user(vault, "ivan", "investigator") as ivan:
        request = access.request_restore(
            ivan,
            case="C-1",
            reason='<img src=x onerror="alert(2)">',
            files=[RequestFile("cam1.png", "a" * 64)],
            mode="exact",
            key=handle,
        ).handle
    with add_user(vault, "alice", "approver") as alice:
        access.approve(alice, request)
    with add_user(vault, "olga", "operator") as olga, pytest.raises(PermissionDenied):
        access.request_restore(
            olga, case="C-1", reason="curious", files=[RequestFile("cam1.png", "b" * 64)], mode="exact"
        )
    keys.suspend(vault, handle, reason="court asked")
    return request


def _entry(**values: object) -> AuditEntry:
    fields: dict[str, object] = {
        "time": "2026-12-01T10:00:00.000000Z",
        "actor": "ivan",
        "role": "investigator",
    }
    fields.update(values)
    return AuditEntry(seq=1, prev_hash=GENESIS_HASH, **fields)  # type: ignore[arg-type]


def test_sentences_say_what_happened() -> None:
    run = _entry(
        action="anonymize",
        outcome="ok",
        actor="olga",
        key_handle="kh_1",
        key_version=2,
        details={"files": 3, "faces": 1, "backend": "ifadit", "failed": 1, "seal_original": True},
    )
    assert sentence(run) == (
        "olga anonymized 3 files (1 face) with the ifadit backend under key kh_1 v2; originals sealed for an "
        "exact restore; 1 file failed."
    )
    model = _entry(action="restore", outcome="ok", key_handle="kh_1", details={"mode": "model", "faces": 2})
    assert "restored 2 faces (model restore: an investigative lead, not an identification)" in sentence(model)
    refused = _entry(
        action="restore", outcome="refused", details={"request": "rq_1", "error": "awaits approval"}
    )
    assert sentence(refused) == "ivan tried restoring faces under request rq_1; refused: awaits approval"
    failed = _entry(action="anonymize", outcome="failed", key_handle="kh_1", details={"error": "disk full"})
    assert sentence(failed) == "ivan tried anonymizing files under key kh_1; it failed: disk full"
    assert sentence(_entry(action="restore.deny", outcome="ok")) == "ivan did restore.deny."


def test_case_report_from_an_excerpt_escapes_every_field(vault: Vault, tmp_path: Path) -> None:
    request = _story(vault)
    vault.export_audit(tmp_path / "c1.jsonl", AuditFilter(case="C-1"))
    kept = auditor.checkpoint(vault)
    report = build_from_bundle(tmp_path / "c1.jsonl", "C-1", public_key=vault.public_key, now=NOW)
    assert report.verification.intact and report.verification.key_source == "pinned"
    assert [e.action for e in report.events] == [
        "key.issue",
        "restore.request",
        "restore.approve",
        "restore.request",
        "key.suspend",
        "audit.export",
    ]
    assert report.counts["keys issued"] == 1 and report.counts["approvals"] == 1
    assert report.counts["refusals"] == 1
    actors = {a.actor: a for a in report.actors}
    assert actors["alice"].roles == ("approver",)
    assert (actors["olga"].roles, actors["olga"].refused) == ((), 1)  # refused as investigator: held no role
    page = render_html(report)
    assert "<script" not in page and "<img" not in page and 'onerror="' not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the key's purpose, as text
    assert "&lt;img src=x onerror=&#34;alert(2)&#34;&gt;" in page  # the request's reason, as text
    assert f"alice approved request {request}." in page and "Verified: the excerpt is intact." in page
    assert "No kept checkpoint was given." in page and "another case" not in page
    assert "Generated</dt><dd>2026-12-07 14:00:00 UTC" in re.sub(r">\s+<", "><", page)

    anchored = build_from_bundle(tmp_path / "c1.jsonl", "C-1", anchors=Anchors([kept], "kept.cp"))
    assert anchored.verification.checkpoint is not None
    assert "Proven against a kept checkpoint" in render_html(anchored)


def test_tampered_excerpt_shows_the_located_fault(vault: Vault, tmp_path: Path) -> None:
    _story(vault)
    vault.export_audit(tmp_path / "c1.jsonl", AuditFilter(case="C-1"))
    lines = (tmp_path / "c1.jsonl").read_bytes().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if b'"action":"restore.approve"' in line)
    lines[at] = lines[at].replace(b'"actor":"alice"', b'"actor":"mallory"')
    (tmp_path / "edited.jsonl").write_bytes(b"".join(lines))
    report = build_from_bundle(tmp_path / "edited.jsonl", "C-1")
    seq = at  # entry seq sits on line seq + 1
    assert not report.verification.intact and report.verification.fault_seq == seq
    assert f"entry {seq} was altered" in (report.verification.fault or "")
    assert min(report.untrusted) == seq and all(
        e.seq in report.untrusted for e in report.events if e.seq >= seq
    )
    page = render_html(report)
    assert "Verification failed" in page and "the located fault" in page and "mallory" in page


def test_whole_bundle_and_live_vault_reports(vault: Vault, tmp_path: Path) -> None:
    _story(vault)
    vault.export_audit(tmp_path / "whole.jsonl")
    whole = build_from_bundle(tmp_path / "whole.jsonl", "C-1")
    assert whole.verification.key_source == "file" and whole.verification.report is not None
    assert whole.verification.report.where is None and {e.action for e in whole.events} >= {"key.issue"}
    assert all(e.seq != 1 for e in whole.events)  # vault.init has no case

    with add_user(vault, "audrey", "auditor") as audrey:
        live = build_from_vault(audrey, audrey.id, "C-1", display_name="lab vault", now=NOW)
    assert (live.source.kind, live.source.name, live.source.vault_id) == ("vault", "lab vault", vault.id)
    assert live.events[-1].action == "audit.export" and live.events[-1].actor == "audrey"
    assert "the live vault <code>lab vault</code>" in render_html(live)
