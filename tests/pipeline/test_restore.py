"""ifadit.pipeline.restore: exact and model restores, refusals, tampering, fail-closed audit, video."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from ifadit.errors import BackendUnavailable, ManifestError
from ifadit.faces.blend import REVERSIBLE_MASK_SCALE
from ifadit.media.digests import file_sha256, list_digest
from ifadit.media.image import read_image, write_image
from ifadit.media.manifest import Manifest, embedding_for, read_manifest, sign_manifest
from ifadit.media.video import VideoWriter, read_frames
from ifadit.pipeline import restore_item
from ifadit.pipeline.anonymize import MANIFEST_PURPOSE, AnonymizeOptions
from ifadit.pipeline.batch import anonymize_paths
from ifadit.pipeline.outputs import keyed_files_digest
from ifadit.pipeline.restore import restore_path, restore_paths
from ifadit.pipeline.restore_item import anonymized_mask_scale, restore_mask_scale
from ifadit.pipeline.restore_plan import RequestPending, RestoreOptions, report_path
from keyvault import access, keys, ledger
from keyvault.errors import ApprovalPending, KeyStateError, PermissionDenied, SealedDataError
from keyvault.vault import open_vault
from tests.keyvault.support import FakeClock
from tests.pipeline.support import (  # noqa: F401
    CASE,
    KeyedColourBackend,
    Lab,
    audit_entries,
    keyed_backend,
    make_lab,
)
from tests.video_scenes import Sprite, deepface_patch, linear_path, render

OPTIONS = RestoreOptions(case=CASE, reason="warrant 2026/114")


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    made = make_lab(tmp_path)
    made.require_approval(False)  # the approval flow has its own tests
    return made


def _anonymize(lab: Lab, source: Path, output: Path, **options: object) -> None:
    with lab.open("olga") as vault:
        report = anonymize_paths(vault, [source], output, AnonymizeOptions(**options), key=lab.key)  # type: ignore[arg-type]
    assert report.exit_code == 0, report.failed


def _restore(lab: Lab, source: Path, target: Path, user: str = "ivan", **options: object):
    with lab.open(user) as vault:
        return restore_path(vault, source, target, replace(OPTIONS, **options))  # type: ignore[arg-type]


@pytest.fixture
def anonymized(lab: Lab, tmp_path: Path, astronaut: np.ndarray) -> Path:
    write_image(tmp_path / "in.png", astronaut)
    _anonymize(lab, tmp_path / "in.png", tmp_path / "out.png", seal_original=True, backend="pixelate")
    return tmp_path / "out.png"


@pytest.mark.parametrize("backend", ["blur", "pixelate", "mask"])
def test_exact_restore_gives_back_the_whole_original(
    lab: Lab, tmp_path: Path, astronaut: np.ndarray, backend: str
) -> None:
    write_image(tmp_path / "in.png", astronaut)
    _anonymize(
        lab, tmp_path / "in.png", tmp_path / "out.png", seal_original=True, backend=backend, mask_scale=1.3
    )
    assert not np.array_equal(read_image(tmp_path / "out.png"), astronaut)
    report = _restore(lab, tmp_path / "out.png", tmp_path / "restored.png", exact=True)
    assert np.array_equal(read_image(tmp_path / "restored.png"), astronaut)
    assert report.faces_restored == 1 and report.mode == "exact" and report.key_handle == lab.key
    written = json.loads(report_path(tmp_path / "restored.png").read_text())
    assert written["audit_seq"] == report.audit_seq and written["anonymize_audit_seq"] is not None
    [entry] = audit_entries(lab, "restore")
    assert entry.seq == report.audit_seq and entry.outcome == "ok" and entry.case_id == CASE
    assert entry.reason == "warrant 2026/114"
    with lab.open("ivan") as vault:
        assert entry.digests["output"] == keyed_files_digest(vault, [tmp_path / "restored.png"])


def test_exported_bundle_holds_no_unkeyed_digest_of_the_original(
    lab: Lab, anonymized: Path, tmp_path: Path
) -> None:
    """Issue 25: entries name the original (anonymize inputs, exact restore output) only by a vault-keyed HMAC."""
    original = tmp_path / "in.png"
    _restore(lab, anonymized, tmp_path / "restored.png", exact=True)
    with lab.open("admin") as vault:
        vault.export_audit(tmp_path / "bundle.jsonl")
        keyed = keyed_files_digest(vault, [original])
    with lab.open("ivan") as vault:  # another user, another unlock: the same file gives the same digest
        assert keyed_files_digest(vault, [original]) == keyed
        assert keyed_files_digest(vault, [tmp_path / "restored.png"]) == keyed  # bit-exact restore
    bundle = (tmp_path / "bundle.jsonl").read_text()
    sha = file_sha256(original)
    assert file_sha256(tmp_path / "restored.png") == sha  # so an unkeyed output digest would leak it too
    for unkeyed in (sha, list_digest([sha])):
        assert unkeyed not in bundle
    [anonymize] = audit_entries(lab, "anonymize")
    [restore] = [e for e in audit_entries(lab, "restore") if e.outcome == "ok"]
    assert anonymize.digests["inputs"] == restore.digests["output"] == keyed
    assert keyed.startswith("hmac-sha256:") and keyed in bundle


def test_jpeg_output_restores_the_face_regions_exactly(
    lab: Lab, tmp_path: Path, astronaut: np.ndarray
) -> None:
    write_image(tmp_path / "in.png", astronaut)
    _anonymize(lab, tmp_path / "in.png", tmp_path / "out.jpg", seal_original=True)
    manifest = read_manifest(tmp_path / "out.jpg")
    assert manifest is not None
    _restore(lab, tmp_path / "out.jpg", tmp_path / "restored.png", exact=True)
    restored = read_image(tmp_path / "restored.png")
    for face in manifest.faces:
        assert face.sealed is not None
        x0, y0, x1, y1 = face.sealed.region
        assert np.array_equal(restored[y0:y1, x0:x1], astronaut[y0:y1, x0:x1])


def test_non_reversible_backend_without_sealed_originals_restores_nothing(
    lab: Lab, tmp_path: Path, astronaut: np.ndarray
) -> None:
    write_image(tmp_path / "in.png", astronaut)
    _anonymize(lab, tmp_path / "in.png", tmp_path / "out.png", backend="mask")
    with pytest.raises(
        BackendUnavailable, match="nothing can be restored .*'mask' is not reversible .*no sealed"
    ):
        _restore(lab, tmp_path / "out.png", tmp_path / "r.png")
    with pytest.raises(BackendUnavailable, match="carries no sealed originals"):
        _restore(lab, tmp_path / "out.png", tmp_path / "r.png", exact=True)
    assert not (tmp_path / "r.png").exists()
    assert [e.outcome for e in audit_entries(lab, "restore")] == ["failed", "failed"]


def test_reversible_backend_round_trip_uses_the_key(
    lab: Lab,
    tmp_path: Path,
    astronaut: np.ndarray,
    keyed_backend: str,  # noqa: F811
) -> None:
    write_image(tmp_path / "in.png", astronaut)
    _anonymize(lab, tmp_path / "in.png", tmp_path / "out.png", backend=keyed_backend)
    anonymized = read_image(tmp_path / "out.png")
    report = _restore(lab, tmp_path / "out.png", tmp_path / "restored.png")
    assert report.mode == "model" and report.faces_restored == 1 and report.model_id == "keyed-test/1"
    core = (slice(100, 150), slice(195, 245))  # inside the astronaut's face

    def error(image: np.ndarray) -> float:
        return float(np.abs(image[core].astype(float) - astronaut[core]).mean())

    assert (
        error(read_image(tmp_path / "restored.png")) < 7 < 10 < error(anonymized)
    )  # bounds: 5.2 and 14 over 150 random keys

    # A copy without manifest restores with --key; a wrong key gives a wrong face and no error.
    write_image(tmp_path / "copy.png", anonymized)
    with lab.open("admin") as vault:
        other = keys.issue(vault, CASE, "another key").handle
    _restore(lab, tmp_path / "copy.png", tmp_path / "right.png", key=lab.key, backend=keyed_backend)
    wrong = _restore(lab, tmp_path / "copy.png", tmp_path / "wrong.png", key=other, backend=keyed_backend)
    assert error(read_image(tmp_path / "right.png")) < 7 < 10 < error(read_image(tmp_path / "wrong.png"))
    assert wrong.key_handle == other and wrong.faces_restored == 1
    assert [e.key_handle for e in audit_entries(lab, "restore")][-1] == other


def test_model_restore_pastes_with_the_mask_scale_the_manifest_records(
    lab: Lab,
    tmp_path: Path,
    astronaut: np.ndarray,
    keyed_backend: str,  # noqa: F811
) -> None:
    """An output anonymized with --mask-scale 1.6 restores with 1.6 unless restore is told otherwise."""
    write_image(tmp_path / "in.png", astronaut)
    _anonymize(lab, tmp_path / "in.png", tmp_path / "out.png", backend=keyed_backend, mask_scale=1.6)
    manifest = read_manifest(tmp_path / "out.png")
    assert manifest is not None and manifest.mask_scale == 1.6
    restored = {}
    for name, scale in (("recorded", None), ("explicit", 1.6), ("default", REVERSIBLE_MASK_SCALE)):
        _restore(lab, tmp_path / "out.png", tmp_path / f"{name}.png", mask_scale=scale)
        restored[name] = read_image(tmp_path / f"{name}.png")
    assert np.array_equal(restored["recorded"], restored["explicit"])
    assert not np.array_equal(restored["recorded"], restored["default"])


def test_restore_tells_the_backend_the_scale_the_anonymization_pasted_with(
    lab: Lab,
    tmp_path: Path,
    astronaut: np.ndarray,
    keyed_backend: str,  # noqa: F811
) -> None:
    """`pasted_at` (how the crops restore reads were published) is the manifest's scale, whatever scale the
    restored crops are pasted with; without a recorded scale, the backend's default."""
    write_image(tmp_path / "in.png", astronaut)
    _anonymize(lab, tmp_path / "in.png", tmp_path / "out.png", backend=keyed_backend, mask_scale=1.6)
    manifest = read_manifest(tmp_path / "out.png")
    backend = KeyedColourBackend()
    assert anonymized_mask_scale(manifest, backend) == 1.6
    assert (
        restore_mask_scale(manifest, backend, RestoreOptions(case=CASE, reason="check", mask_scale=1.1))
        == 1.1
    )
    assert anonymized_mask_scale(None, backend) == REVERSIBLE_MASK_SCALE
    assert anonymized_mask_scale(replace(manifest, mask_scale=None), backend) == REVERSIBLE_MASK_SCALE


def _rewrite_manifest(path: Path, manifest: Manifest) -> None:
    write_image(path, read_image(path), **embedding_for(path, manifest))


def _face(manifest: Manifest, **change: object) -> Manifest:
    return replace(manifest, faces=(replace(manifest.faces[0], **change),))


def _sealed(manifest: Manifest, **change: object) -> Manifest:
    sealed = manifest.faces[0].sealed
    assert sealed is not None
    return _face(manifest, sealed=replace(sealed, **change))


EDITS = {
    "backend": lambda m: replace(m, backend="blur"),
    "vault_id": lambda m: replace(m, vault_id="0" * 32),
    "signing_key_id": lambda m: replace(m, signing_key_id="0" * 64),
    "pixels_sha256": lambda m: replace(m, pixels_sha256="0" * 64),
    "tool_version": lambda m: replace(m, tool_version="9.9"),
    "model_id": lambda m: replace(m, model_id="other"),
    "model_sha256": lambda m: replace(m, model_sha256="1" * 64),
    "key_handle": lambda m: replace(m, key_handle="kh_000000000000000000000000"),
    "key_version": lambda m: replace(m, key_version=2),
    "audit_seq": lambda m: replace(m, audit_seq=1),
    "format": lambda m: replace(m, format="ifadit-manifest/1"),  # still readable, but not what was signed
    "mask_scale": lambda m: replace(m, mask_scale=2.0),
    "manifest_id": lambda m: replace(m, manifest_id="mf_" + "0" * 32),
    "signature removed": lambda m: replace(m, signature=None),
    "faces removed": lambda m: replace(m, faces=()),
    "face index": lambda m: _face(m, index=1),
    "face box": lambda m: _face(m, box=(0, 0, 10, 10)),
    "face track_id": lambda m: _face(m, track_id=5),
    "face frame": lambda m: _face(m, frame=0),
    "sealed removed": lambda m: _face(m, sealed=None),
    "sealed region": lambda m: _sealed(m, region=(0, 0, 8, 8)),
    "sealed wrapped_key": lambda m: _sealed(m, wrapped_key=m.faces[0].sealed.ciphertext),
    "sealed ciphertext": lambda m: _sealed(m, ciphertext=m.faces[0].sealed.wrapped_key),
    "sealed commitment": lambda m: _sealed(m, commitment="0" * 64),
}


@pytest.mark.parametrize("field", sorted(EDITS))
def test_every_manifest_field_edit_is_refused(lab: Lab, anonymized: Path, tmp_path: Path, field: str) -> None:
    manifest = read_manifest(anonymized)
    assert manifest is not None
    _rewrite_manifest(anonymized, EDITS[field](manifest))
    with pytest.raises(ManifestError) as caught:
        _restore(lab, anonymized, tmp_path / "r.png", exact=True)
    assert caught.value.exit_code == 4 and not (tmp_path / "r.png").exists()
    assert str(anonymized) in str(caught.value)


def test_edited_pixels_and_foreign_vault_are_refused(
    lab: Lab, anonymized: Path, tmp_path: Path, astronaut: np.ndarray
) -> None:
    manifest = read_manifest(anonymized)
    assert manifest is not None
    pixels = read_image(anonymized).copy()
    pixels[0, 0] ^= 1
    write_image(anonymized, pixels, **embedding_for(anonymized, manifest))
    with pytest.raises(ManifestError, match="pixels do not match the manifest"):
        _restore(lab, anonymized, tmp_path / "r.png", exact=True)
    other = make_lab(tmp_path / "other")
    other.require_approval(False)
    with pytest.raises(ManifestError, match="signature does not verify"):
        _restore(other, anonymized, tmp_path / "r.png", exact=True)


def test_swapped_sealed_payloads_fail_even_when_re_signed(
    lab: Lab, tmp_path: Path, astronaut: np.ndarray
) -> None:
    write_image(tmp_path / "a.png", astronaut)
    write_image(tmp_path / "b.png", astronaut[:, ::-1].copy())
    _anonymize(lab, tmp_path / "a.png", tmp_path / "out_a.png", seal_original=True)
    _anonymize(lab, tmp_path / "b.png", tmp_path / "out_b.png", seal_original=True)
    first, second = read_manifest(tmp_path / "out_a.png"), read_manifest(tmp_path / "out_b.png")
    assert first is not None and second is not None
    swapped = replace(first, faces=(replace(first.faces[0], sealed=second.faces[0].sealed),))
    _rewrite_manifest(tmp_path / "out_a.png", swapped)
    with pytest.raises(ManifestError, match="signature does not verify"):
        _restore(lab, tmp_path / "out_a.png", tmp_path / "r.png", exact=True)
    with lab.open("admin") as vault:  # an insider who can make the vault sign still cannot move evidence
        resigned = sign_manifest(swapped, lambda data: vault.sign_detached(MANIFEST_PURPOSE, data))
    _rewrite_manifest(tmp_path / "out_a.png", resigned)
    with pytest.raises(SealedDataError):
        _restore(lab, tmp_path / "out_a.png", tmp_path / "r.png", exact=True)
    assert not (tmp_path / "r.png").exists()
    assert audit_entries(lab, "restore")[-1].outcome == "failed"


def _resign(lab: Lab, path: Path, manifest: Manifest) -> None:
    """What an insider holding the manifest signing key can do: edit the manifest and sign it again."""
    with lab.open("admin") as vault:
        signed = sign_manifest(manifest, lambda data: vault.sign_detached(MANIFEST_PURPOSE, data))
    _rewrite_manifest(path, signed)


def test_sealed_region_moved_40_px_and_re_signed_is_refused_and_nothing_is_written(
    lab: Lab, anonymized: Path, tmp_path: Path, astronaut: np.ndarray
) -> None:
    """Issue 25: the region's box is in the sealing's associated data, so moving it fails even when re-signed."""
    manifest = read_manifest(anonymized)
    assert manifest is not None and manifest.faces[0].sealed is not None
    x0, y0, x1, y1 = manifest.faces[0].sealed.region
    _resign(lab, anonymized, _sealed(manifest, region=(x0 + 40, y0, x1 + 40, y1)))
    with pytest.raises(SealedDataError) as caught:
        _restore(lab, anonymized, tmp_path / "r.png", exact=True)
    assert str(caught.value) == str(SealedDataError()) and caught.value.exit_code == 4
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("r.png")]
    assert audit_entries(lab, "restore")[-1].outcome == "failed"
    _resign(lab, anonymized, manifest)  # unchanged (re-signed as it was): bit-exact
    _restore(lab, anonymized, tmp_path / "r.png", exact=True)
    assert np.array_equal(read_image(tmp_path / "r.png"), astronaut)


def test_sealed_face_transplanted_into_another_manifest_is_refused(
    lab: Lab, tmp_path: Path, astronaut: np.ndarray
) -> None:
    """Same input anonymized twice: equal pixels, different manifest ids; a payload opens only in its own."""
    write_image(tmp_path / "in.png", astronaut)
    _anonymize(lab, tmp_path / "in.png", tmp_path / "out_a.png", seal_original=True)
    _anonymize(lab, tmp_path / "in.png", tmp_path / "out_b.png", seal_original=True)
    first, second = read_manifest(tmp_path / "out_a.png"), read_manifest(tmp_path / "out_b.png")
    assert first is not None and second is not None
    assert first.pixels_sha256 == second.pixels_sha256 and first.manifest_id != second.manifest_id
    _resign(lab, tmp_path / "out_a.png", _face(first, sealed=second.faces[0].sealed))
    with pytest.raises(SealedDataError):
        _restore(lab, tmp_path / "out_a.png", tmp_path / "r.png", exact=True)
    _resign(lab, tmp_path / "out_a.png", replace(first, manifest_id=second.manifest_id))
    with pytest.raises(SealedDataError):
        _restore(lab, tmp_path / "out_a.png", tmp_path / "r.png", exact=True)
    assert not (tmp_path / "r.png").exists()


def test_a_legacy_manifest_with_unbound_sealed_regions_is_not_restored_exactly(
    lab: Lab, anonymized: Path, tmp_path: Path
) -> None:
    """Formats before ifadit-manifest/3 did not bind a region to its box: exact restore refuses them by name."""
    manifest = read_manifest(anonymized)
    assert manifest is not None
    _resign(lab, anonymized, replace(manifest, format="ifadit-manifest/2", manifest_id=None))
    with pytest.raises(BackendUnavailable, match=r"sealed originals \(ifadit-manifest/2\) are not bound"):
        _restore(lab, anonymized, tmp_path / "r.png", exact=True)
    assert not (tmp_path / "r.png").exists()


@pytest.mark.parametrize("verb", ["suspend", "revoke", "destroy"])
def test_key_state_refuses_restore_naming_it(lab: Lab, anonymized: Path, tmp_path: Path, verb: str) -> None:
    with lab.open("admin") as vault:
        if verb == "destroy":
            keys.revoke(vault, lab.key, reason="closed")
        getattr(keys, verb)(
            vault, lab.key, reason="test", **({"window": timedelta(0)} if verb == "destroy" else {})
        )
    state = {"suspend": "suspended", "revoke": "revoked", "destroy": "destroyed"}[verb]
    with pytest.raises(KeyStateError, match=f"key {lab.key} is {state}: restore refused"):
        _restore(lab, anonymized, tmp_path / "r.png", exact=True)
    assert audit_entries(lab, "restore")[-1].outcome == "refused" and not (tmp_path / "r.png").exists()


def test_wrong_case_and_wrong_role_are_refused(lab: Lab, anonymized: Path, tmp_path: Path) -> None:
    with pytest.raises(PermissionDenied, match="does not belong to case C-99"):
        _restore(lab, anonymized, tmp_path / "r.png", exact=True, case="C-99")
    with pytest.raises(PermissionDenied, match="lacks the role investigator"):
        _restore(lab, anonymized, tmp_path / "r.png", user="olga", exact=True)
    assert [(e.actor, e.outcome) for e in audit_entries(lab, "restore")] == [
        ("ivan", "refused"),
        ("olga", "refused"),
    ]
    assert not (tmp_path / "r.png").exists()


def test_approval_is_required_single_use_and_not_self_given(
    lab: Lab, anonymized: Path, tmp_path: Path
) -> None:
    lab.require_approval(True)
    with pytest.raises(ApprovalPending, match=r"request (rq_\w+) awaits approval") as pending:
        _restore(lab, anonymized, tmp_path / "r.png", exact=True)
    request = pending.value.args[0].split()[1]
    with lab.open("ivan") as vault, pytest.raises(PermissionDenied, match="lacks the role approver"):
        access.approve(vault, request)
    with lab.open("alice") as vault:
        access.approve(vault, request)
    report = _restore(lab, anonymized, tmp_path / "r.png", exact=True)
    assert report.request == request and report.approvals[0]["approver"] == "alice"
    with pytest.raises(ApprovalPending, match="awaits approval"):  # used up: a new request is filed
        _restore(lab, anonymized, tmp_path / "r2.png", exact=True)
    assert not (tmp_path / "r2.png").exists()


def test_restore_writes_nothing_when_its_audit_entry_fails(
    lab: Lab, anonymized: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    append = ledger.append

    def failing_append(session, **fields):
        if fields["action"] == "restore" and fields["outcome"] == "ok":
            raise OSError("disk full")
        return append(session, **fields)

    monkeypatch.setattr(ledger, "append", failing_append)
    with pytest.raises(OSError, match="disk full"):
        _restore(lab, anonymized, tmp_path / "r.png", exact=True)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("r")) == []


def test_video_exact_round_trip_is_bit_exact(lab: Lab, tmp_path: Path, shared_dir: Path) -> None:
    sprites = [
        Sprite(deepface_patch(shared_dir, "person01/img28.jpg"), linear_path((0, 0), (30, 10), 6)),
        Sprite(deepface_patch(shared_dir, "person02/img47.jpg"), linear_path((190, 110), (180, 100), 6)),
    ]
    with VideoWriter(tmp_path / "clip.mp4", fps=10) as writer:
        for frame in render(sprites, 6):
            writer.write(frame)
    original = list(read_frames(tmp_path / "clip.mp4"))
    _anonymize(lab, tmp_path / "clip.mp4", tmp_path / "out", seal_original=True, lossless=True)
    anonymized = tmp_path / "out" / "clip.mkv"
    manifest = read_manifest(anonymized)
    assert manifest is not None and {face.frame for face in manifest.faces} == set(range(6))
    assert {face.track_id for face in manifest.faces} == {0, 1}
    assert all(not np.array_equal(a, b) for a, b in zip(read_frames(anonymized), original, strict=True))
    report = _restore(lab, anonymized, tmp_path / "restored.mkv", exact=True)
    restored = list(read_frames(tmp_path / "restored.mkv"))
    assert len(restored) == 6 and all(np.array_equal(a, b) for a, b in zip(restored, original, strict=True))
    assert report.faces_restored == len(manifest.faces) == 12


def test_rotation_anonymizes_with_the_new_version_and_restores_the_old(
    lab: Lab, anonymized: Path, tmp_path: Path, astronaut: np.ndarray
) -> None:
    with lab.open("admin") as vault:
        keys.rotate(vault, lab.key)
    _anonymize(lab, tmp_path / "in.png", tmp_path / "new.png", seal_original=True)
    assert read_manifest(tmp_path / "new.png").key_version == 2  # type: ignore[union-attr]
    old = _restore(lab, anonymized, tmp_path / "old_restored.png", exact=True)
    new = _restore(lab, tmp_path / "new.png", tmp_path / "new_restored.png", exact=True)
    assert (old.key_version, new.key_version) == (1, 2)
    assert np.array_equal(read_image(tmp_path / "old_restored.png"), astronaut)
    assert np.array_equal(read_image(tmp_path / "new_restored.png"), astronaut)


def test_an_expired_approval_does_not_restore(lab: Lab, anonymized: Path, tmp_path: Path) -> None:
    lab.require_approval(True)
    with pytest.raises(ApprovalPending) as pending:
        _restore(lab, anonymized, tmp_path / "r.png", exact=True)
    request = pending.value.args[0].split()[1]
    with lab.open("alice") as vault:
        access.approve(vault, request)
    later = FakeClock(datetime.now(UTC) + timedelta(hours=25))  # the default approval TTL is 24 h
    with (
        open_vault(lab.url, "ivan", b"ivan", clock=later) as vault,
        pytest.raises(ApprovalPending, match="expired"),
    ):
        restore_path(vault, anonymized, tmp_path / "r.png", replace(OPTIONS, exact=True))
    assert not (tmp_path / "r.png").exists()


def test_a_batch_files_one_request_and_builds_its_model_once(
    lab: Lab,
    tmp_path: Path,
    astronaut: np.ndarray,
    keyed_backend: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 26: a folder of outputs is one request and one audit entry; each backend is built once per run;
    progress counts faces and each file is reported as it finishes."""
    lab.require_approval(True)
    (tmp_path / "seized").mkdir()
    write_image(tmp_path / "seized" / "a.png", astronaut)
    write_image(tmp_path / "seized" / "b.png", np.ascontiguousarray(astronaut[:, ::-1]))
    _anonymize(lab, tmp_path / "seized", tmp_path / "released", backend=keyed_backend)
    built: list[str] = []
    real = restore_item.get_backend
    monkeypatch.setattr(restore_item, "get_backend", lambda name: built.append(name) or real(name))
    with lab.open("ivan") as vault, pytest.raises(RequestPending) as pending:
        restore_paths(vault, [tmp_path / "released"], tmp_path / "restored", OPTIONS)
    request = pending.value.request
    assert [Path(f.name).name for f in request.files] == ["a.png", "b.png"] and request.mode == "model"
    with lab.open("alice") as vault:
        access.approve(vault, request.handle)
    finished: list[str] = []
    with lab.open("ivan") as vault:
        report = restore_paths(
            vault,
            [tmp_path / "released"],
            tmp_path / "restored",
            OPTIONS,
            progress=True,
            on_file=lambda done: finished.append(Path(done.input).name),
        )
    assert finished == ["a.png", "b.png"] and "2/2" in capsys.readouterr().err  # tqdm: 2 of 2 faces
    assert built == [keyed_backend, keyed_backend]  # once for the pending run, once for the restore
    assert report.request == request.handle and [r.faces_restored for r in report.files] == [1, 1]
    assert {r.audit_seq for r in report.files} == {report.audit_seq}
    [entry] = [e for e in audit_entries(lab, "restore") if e.outcome == "ok"]
    assert entry.details["files"] == 2 and entry.details["keys"] == [f"{lab.key} v1"]


def test_a_revoked_key_is_named_before_any_request_is_filed(
    lab: Lab, anonymized: Path, tmp_path: Path
) -> None:
    """Under the approval policy, a key that cannot restore is refused by name, not as an approval to wait for."""
    lab.require_approval(True)
    with lab.open("admin") as vault:
        keys.revoke(vault, lab.key, reason="case closed")
    with pytest.raises(KeyStateError, match=f"key {lab.key} is revoked: restore refused"):
        _restore(lab, anonymized, tmp_path / "r.png", exact=True)
    assert (
        audit_entries(lab, "restore.request") == [] and audit_entries(lab, "restore")[-1].outcome == "refused"
    )
