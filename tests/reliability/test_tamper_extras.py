"""Tampering the earlier suites do not cover: outputs swapped between cases, replayed approvals, and an
edit of every audit-entry field in an exported bundle (each located at the edited entry's seq)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ifadit.errors import ManifestError
from ifadit.media.digests import file_sha256
from ifadit.media.image import write_image
from ifadit.media.manifest import read_manifest
from ifadit.pipeline.anonymize import AnonymizeOptions
from ifadit.pipeline.batch import anonymize_paths
from ifadit.pipeline.outputs import embed_manifest, write_pixels
from ifadit.pipeline.restore import restore_path
from ifadit.pipeline.restore_plan import RestoreOptions
from keyvault import access, keys
from keyvault.audit import AuditEntry
from keyvault.errors import ApprovalPending, AuditVerificationError, PermissionDenied
from keyvault.records import inputs_digest
from keyvault.verify import verify_bundle
from tests.pipeline.support import CASE, Lab, audit_entries, make_lab

OTHER_CASE = "C-99"
OPTIONS = RestoreOptions(case=CASE, reason="warrant 2026/114", exact=True, force=True)


@pytest.fixture
def two_cases(tmp_path: Path, astronaut: np.ndarray) -> tuple[Lab, str, Path, Path]:
    """A lab with a key per case; out_a.png anonymized under CASE's key, out_b.png under OTHER_CASE's."""
    lab = make_lab(tmp_path)
    lab.require_approval(False)
    with lab.open("admin") as vault:
        other_key = keys.issue(vault, OTHER_CASE, "another case").handle
    write_image(tmp_path / "in_a.png", astronaut)
    write_image(tmp_path / "in_b.png", astronaut[:, ::-1].copy())  # another photo: other pixels
    options = AnonymizeOptions(backend="pixelate", seal_original=True)
    for name, key in (("a", lab.key), ("b", other_key)):
        with lab.open("olga") as vault:
            report = anonymize_paths(
                vault, [tmp_path / f"in_{name}.png"], tmp_path / f"out_{name}.png", options, key=key
            )
        assert report.exit_code == 0
    return lab, other_key, tmp_path / "out_a.png", tmp_path / "out_b.png"


def _restore(lab: Lab, source: Path, target: Path, **changes: object):
    with lab.open("ivan") as vault:
        return restore_path(vault, source, target, replace(OPTIONS, **changes))  # type: ignore[arg-type]


def test_output_of_case_a_restored_under_case_b_is_refused_and_audited(two_cases, tmp_path: Path) -> None:
    lab, other_key, out_a, out_b = two_cases
    with pytest.raises(PermissionDenied, match=f"does not belong to case {OTHER_CASE}"):
        _restore(lab, out_a, tmp_path / "r.png", case=OTHER_CASE)
    with pytest.raises(PermissionDenied, match=f"does not belong to case {CASE}"):
        _restore(lab, out_b, tmp_path / "r.png", case=CASE)
    refused = [(e.case_id, e.key_handle) for e in audit_entries(lab, "restore") if e.outcome == "refused"]
    assert refused == [(OTHER_CASE, lab.key), (CASE, other_key)]
    assert not (tmp_path / "r.png").exists()
    assert (
        _restore(lab, out_b, tmp_path / "r.png", case=OTHER_CASE).key_handle == other_key
    )  # the right case works


def test_manifest_of_case_b_on_pixels_of_case_a_is_refused(two_cases, tmp_path: Path) -> None:
    """A genuinely signed manifest moved onto another case's output: the pixel digest no longer matches."""
    lab, _, out_a, out_b = two_cases
    from ifadit.media.image import read_image

    swapped = tmp_path / "swapped.png"
    write_pixels(swapped, read_image(out_a))
    manifest_b = read_manifest(out_b)
    assert manifest_b is not None and manifest_b.signature
    embed_manifest(swapped, manifest_b)
    with pytest.raises(ManifestError) as info:
        _restore(lab, swapped, tmp_path / "r.png", case=OTHER_CASE)
    assert info.value.exit_code == 4
    entry = audit_entries(lab, "restore")[-1]
    assert (entry.outcome, entry.case_id, entry.details["error"]) == ("failed", OTHER_CASE, "ManifestError")
    assert not (tmp_path / "r.png").exists()


def test_approval_for_one_output_does_not_restore_another(
    two_cases, tmp_path: Path, astronaut: np.ndarray
) -> None:
    lab, _, out_a, _ = two_cases
    lab.require_approval(True)
    with pytest.raises(ApprovalPending) as pending:
        _restore(lab, out_a, tmp_path / "r.png")
    request_a = pending.value.args[0].split()[1]
    with lab.open("alice") as vault:
        access.approve(vault, request_a)
    write_image(tmp_path / "in2.png", astronaut[:, ::-1].copy())  # another input, same case and key
    with lab.open("olga") as vault:
        anonymize_paths(
            vault,
            [tmp_path / "in2.png"],
            tmp_path / "out_c.png",
            AnonymizeOptions(backend="pixelate", seal_original=True),
            key=lab.key,
        )
    with pytest.raises(ApprovalPending) as other:  # A's approval is not used: C gets its own request
        _restore(lab, tmp_path / "out_c.png", tmp_path / "r.png")
    assert other.value.args[0].split()[1] != request_a and not (tmp_path / "r.png").exists()
    with lab.open("ivan") as vault, pytest.raises(PermissionDenied, match="approved for other inputs"):
        keys.unseal_for_use(
            vault,
            lab.key,
            purpose="restore",
            request=request_a,
            input_digest=inputs_digest([file_sha256(tmp_path / "out_c.png")]),
            mode="exact",
        )
    assert _restore(lab, out_a, tmp_path / "r.png").request == request_a  # still unused, still A's
    assert audit_entries(lab, "key.use")[-1].outcome == "refused"


def test_used_approval_replayed_by_handle_is_refused_and_audited(two_cases, tmp_path: Path) -> None:
    lab, _, out_a, _ = two_cases
    lab.require_approval(True)
    with pytest.raises(ApprovalPending) as pending:
        _restore(lab, out_a, tmp_path / "r.png")
    request = pending.value.args[0].split()[1]
    with lab.open("alice") as vault:
        access.approve(vault, request)
    assert _restore(lab, out_a, tmp_path / "r.png").request == request
    digest = inputs_digest([file_sha256(out_a)])
    with (
        lab.open("ivan") as vault,
        pytest.raises(PermissionDenied, match="already used: approvals are single-use"),
    ):
        keys.unseal_for_use(
            vault, lab.key, purpose="restore", request=request, input_digest=digest, mode="exact"
        )
    with lab.open("alice") as vault, pytest.raises(Exception, match="used|pending|approv"):
        access.approve(vault, request)  # a used request cannot be re-approved into a second use
    entry = audit_entries(lab, "key.use")[-1]
    assert entry.outcome == "refused" and entry.actor == "ivan"
    with lab.open("ivan") as vault:
        assert access.show_request(vault, request).state == "used"


# ---------------------------------------------------------------- every audit-entry field, edited in a bundle

FIELD_EDITS = {
    "seq": lambda e: e.seq + 100,
    "time": lambda e: "2020-01-01T00:00:00.000000Z",
    "actor": lambda e: "mallory",
    "role": lambda e: "admin" if e.role != "admin" else "auditor",
    "action": lambda e: "key.list",
    "outcome": lambda e: "refused" if e.outcome == "ok" else "ok",
    "key_handle": lambda e: "kh_" + "0" * 24,
    "key_version": lambda e: (e.key_version or 1) + 1,
    "case_id": lambda e: "C-0",
    "reason": lambda e: "routine check",
    "digests": lambda e: {**e.digests, "input": "0" * 64},
    "details": lambda e: {**e.details, "faces": 0},
    "prev_hash": lambda e: "f" * 64,
}


@pytest.fixture(scope="module")
def story_bundle(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray) -> bytes:
    folder = tmp_path_factory.mktemp("bundle")
    lab = make_lab(folder)
    lab.require_approval(False)
    write_image(folder / "in.png", astronaut)
    with lab.open("olga") as vault:
        anonymize_paths(
            vault, [folder / "in.png"], folder / "out.png", AnonymizeOptions(backend="blur"), key=lab.key
        )
    with lab.open("audrey") as vault:
        vault.export_audit(folder / "bundle.jsonl")
    return (folder / "bundle.jsonl").read_bytes()


def test_every_audit_entry_field_is_covered() -> None:
    assert set(FIELD_EDITS) == {f.name for f in dataclasses.fields(AuditEntry)}


@pytest.mark.parametrize("position", ["first", "middle", "last"])
@pytest.mark.parametrize("name", sorted(FIELD_EDITS))
def test_edited_audit_entry_field_is_detected_at_its_seq(
    story_bundle: bytes, tmp_path: Path, name: str, position: str
) -> None:
    lines = story_bundle.splitlines(keepends=True)
    entry_rows = [i for i, line in enumerate(lines) if i > 0 and not line.startswith(b'{"tree_head":')]
    row = {"first": entry_rows[0], "middle": entry_rows[len(entry_rows) // 2], "last": entry_rows[-1]}[
        position
    ]
    entry = AuditEntry.from_canonical(lines[row].rstrip(b"\n"))
    changed = json.loads(lines[row])
    changed[name] = FIELD_EDITS[name](entry)
    assert changed[name] != getattr(entry, name)
    lines[row] = (
        json.dumps(changed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
    )
    (tmp_path / "b.jsonl").write_bytes(b"".join(lines))
    for strict in (False, True):
        with pytest.raises(AuditVerificationError) as info:
            verify_bundle(tmp_path / "b.jsonl", strict=strict)
        assert info.value.exit_code == 4
        if position == "last" and name == "prev_hash":  # no successor and no head over the one before
            assert info.value.seq == entry.seq - 1
            assert f"entry {entry.seq - 1} or entry {entry.seq} was altered" in str(info.value)
        elif position == "last" and name != "seq":
            # nothing after the newest entry vouches for it: the newest signed head (over all entries) catches
            # it, and the first entry after the largest matching head (none here: the export keeps one) is named
            assert info.value.seq == 1 and f"entry {entry.seq} does not match the signed tree head" in str(
                info.value
            )
        else:
            assert info.value.seq == entry.seq, (name, position, str(info.value))
