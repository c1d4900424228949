"""Restore anonymized faces for an authorized investigator, audited and fail-closed.

The steps (`restore_path`):
  1. read the input and its manifest; verify the signature with the vault's public key, that the
     manifest belongs to this vault and that the pixels are the ones it describes (else exit 4);
  2. choose the key version the manifest names (or `--key` for a copy without manifest) and the mode:
     `--exact` opens the sealed original regions, otherwise the backend runs backwards; refuse up front
     what cannot be restored (a non-reversible backend without sealed originals);
  3. find or file the restore request when the vault's policy requires an approval;
  4. in ONE vault action: consume the approval, unseal the key (refusing suspended, revoked and destroyed
     keys by name), compute the restored pixels into a staging folder, record the audit entry (the
     restored output only by its keyed digest: it is original content);
  5. only after that entry has committed, move the output into place and write the restoration report
     (`<output>.restore.json`).
A failure in step 1 or 2 is audited too (outcome failed/refused). A wrong key in model mode is not an
error: it yields a plausible wrong face, and the audit entry records the attempt.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ifadit.backends.base import Backend, get_backend, is_reversible
from ifadit.errors import BackendUnavailable, InputError, ManifestError, NoFaceError
from ifadit.faces.align import align_face
from ifadit.faces.blend import paste_back
from ifadit.faces.detect import Detector, landmarks5
from ifadit.faces.registry import get_detector
from ifadit.media.image import DEFAULT_MAX_PIXELS, atomic_write_bytes, read_image, write_image
from ifadit.media.manifest import (
    LEGACY_SEAL_FORMATS,
    FaceRecord,
    Manifest,
    pixels_digest,
    read_manifest,
    verify_manifest,
)
from ifadit.media.video import VideoCodec, VideoWriter, probe_video, read_frames, read_timed_frames
from ifadit.pipeline.anonymize import MANIFEST_PURPOSE, mask_scale_for
from ifadit.pipeline.inputs import ItemKind, kind_of
from ifadit.pipeline.outputs import file_sha256, frames_digest, keyed_list_digest
from ifadit.pipeline.sealing import SealBinding, unseal_face
from ifadit.pipeline.staging import Staging
from keyvault import (
    PermissionDenied,
    UnsealedKey,
    Vault,
    access,
    key_fingerprint,
    keys,
    ledger,
    verify_detached,
)

Mode = Literal["exact", "model"]
REPORT_SUFFIX = ".restore.json"


@dataclass(frozen=True)
class RestoreOptions:
    """What to restore and why; `backend` is used only for a copy without manifest."""

    case: str
    reason: str
    key: str | None = None  # key handle to try when the input carries no manifest
    exact: bool = False  # open the sealed originals instead of running the backend backwards
    backend: str = "ifadit"  # reversible backend for a copy without manifest
    detector: str = "hog"
    mask_scale: float | None = None  # None: the manifest's, else the backend's default (`restore_mask_scale`)
    max_pixels: int = DEFAULT_MAX_PIXELS

    def check(self) -> None:
        """Raise `ValueError` for a missing case or reason."""
        if not self.case.strip() or not self.reason.strip():
            raise ValueError("a restore needs a case id (--case) and a reason (--reason)")


@dataclass(frozen=True)
class Inspection:
    """What step 1-2 found out about the input."""

    source: Path
    kind: ItemKind
    input_sha256: str  # SHA-256 of the input file (what requests and audit entries name)
    manifest: Manifest | None
    key_handle: str
    key_version: int | None  # None: the newest version
    backend: str
    mode: Mode
    pixels: np.ndarray | None = field(default=None, repr=False)  # a still image's decoded pixels
    model: Backend | None = field(default=None, repr=False)  # the backend, built once, in model mode


@dataclass(frozen=True)
class RestoreReport:
    """The restoration report written next to the output."""

    input: str
    output: str
    mode: Mode
    case_id: str
    reason: str
    input_sha256: str
    output_sha256: str
    key_handle: str
    key_version: int
    backend: str
    model_id: str | None
    model_sha256: str | None
    faces_listed: int  # faces the manifest lists (detected faces without manifest)
    faces_restored: int
    audit_seq: int  # this restore's audit entry
    anonymize_audit_seq: int | None  # the anonymize run's entry, from the manifest
    request: str | None
    approvals: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def report_path(output: Path) -> Path:
    """Where the restoration report of `output` is written."""
    return output.with_name(output.name + REPORT_SUFFIX)


# ---------------------------------------------------------------- steps 1-2: inspect


def _input_pixels(source: Path, kind: ItemKind, max_pixels: int) -> tuple[str, np.ndarray | None]:
    if kind == "video":
        return frames_digest(pixels_digest(image) for image in read_frames(source)), None
    image = read_image(source, max_pixels=max_pixels)
    return pixels_digest(image), image


def check_manifest(vault: Vault, manifest: Manifest, pixels_sha256: str, *, source: str) -> None:
    """Refuse (ManifestError, exit 4) a manifest that is unsigned, edited, from another vault or other pixels."""
    verify_manifest(
        manifest,
        lambda signature, data: verify_detached(vault.public_key, MANIFEST_PURPOSE, data, signature),
        source=source,
    )
    if manifest.vault_id != vault.id or manifest.signing_key_id != key_fingerprint(vault.public_key):
        raise ManifestError(f"{source}: manifest was made by another vault ({manifest.vault_id})")
    if manifest.pixels_sha256 != pixels_sha256:
        raise ManifestError(
            f"{source}: pixels do not match the manifest (the file was edited or re-encoded)",
            hint="a re-encoded copy can still be model-restored without its manifest: strip it and pass --key",
        )


def inspect_input(vault: Vault, source: Path, options: RestoreOptions) -> Inspection:
    """Steps 1-2: verify the manifest against this vault and the pixels, pick key version and mode."""
    kind = kind_of(source)
    if not source.is_file():
        raise InputError(f"{source}: no such file")
    manifest = read_manifest(source)  # 1
    digest, pixels = _input_pixels(source, kind, options.max_pixels)
    if manifest is None:  # 2
        if options.exact:
            raise InputError(
                f"{source}: carries no manifest, so no sealed originals: nothing to restore exactly"
            )
        if options.key is None:
            raise InputError(
                f"{source}: carries no manifest", hint="pass --key HANDLE to try a model restore"
            )
        if not is_reversible(options.backend):
            raise BackendUnavailable(
                f"backend {options.backend!r} is not reversible: nothing can be restored"
            )
        backend = get_backend(options.backend)
        return Inspection(
            source,
            kind,
            file_sha256(source),
            None,
            options.key,
            None,
            options.backend,
            "model",
            pixels,
            backend,
        )
    check_manifest(vault, manifest, digest, source=str(source))
    if options.key is not None and options.key != manifest.key_handle:
        raise InputError(f"{source}: its manifest names key {manifest.key_handle}, not {options.key}")
    sealed = any(face.sealed is not None for face in manifest.faces)
    nothing = f"nothing can be restored from {source}"
    if manifest.key_handle is None or manifest.key_version is None:
        raise BackendUnavailable(f"{nothing}: it was anonymized without a key")
    if options.exact and not sealed:
        raise BackendUnavailable(
            f"{nothing} exactly: it carries no sealed originals",
            hint="only outputs anonymized with --seal-original restore exactly",
        )
    if options.exact and manifest.format in LEGACY_SEAL_FORMATS:
        raise BackendUnavailable(
            f"{nothing} exactly: its sealed originals ({manifest.format}) are not bound to where they belong",
            hint="anyone able to re-sign could have moved them; anonymize the original again with --seal-original",
        )
    if not options.exact and not is_reversible(manifest.backend):  # checked before any model is loaded
        if sealed:
            raise BackendUnavailable(
                f"backend {manifest.backend!r} is not reversible",
                hint="its sealed originals restore with --exact",
            )
        raise BackendUnavailable(
            f"{nothing}: backend {manifest.backend!r} is not reversible and it carries no sealed originals"
        )
    model = None if options.exact else get_backend(manifest.backend)
    mode: Mode = "exact" if options.exact else "model"
    return Inspection(
        source,
        kind,
        file_sha256(source),
        manifest,
        manifest.key_handle,
        manifest.key_version,
        manifest.backend,
        mode,
        pixels,
        model,
    )


# ---------------------------------------------------------------- step 4: restore pixels


def restore_exact(
    image: np.ndarray,
    faces: list[FaceRecord],
    manifest: Manifest,
    key: UnsealedKey,
    pixels_sha256: str,
    *,
    source: str,
) -> tuple[np.ndarray, int]:
    """Write the sealed original regions of `faces` back into `image` (commitments checked).

    Each region opens only at the box, image shape and manifest identity it was sealed under
    (`ifadit.pipeline.sealing`); anything else is the one opaque `SealedDataError`.
    """
    binding = SealBinding.of(manifest)
    out = image.copy()
    count = 0
    for face in faces:
        if face.sealed is None:
            continue
        x0, y0, x1, y1 = face.sealed.region
        out[y0:y1, x0:x1] = unseal_face(
            key.material,
            face.sealed,
            binding,
            image.shape,
            pixels_sha256=pixels_sha256,
            face=face.index,
            frame=face.frame,
            source=source,
        )
        count += 1
    return out, count


def restore_model(
    image: np.ndarray,
    faces: list[FaceRecord] | None,
    backend: Backend,
    detector: Detector,
    key: UnsealedKey,
    mask_scale: float,
    pasted_at: float | None = None,
) -> tuple[np.ndarray, int]:
    """Run the backend backwards on the faces of `image`, pasting the restored crops at `mask_scale`.

    With a manifest, on the boxes it lists, with the 5 landmarks re-read inside each box from the anonymized
    pixels (no detection needed, so a surrogate the detector would miss is still restored); without one,
    on the faces the detector finds. `pasted_at`: the scale the anonymization pasted with, for backends that
    model it (`Backend.restore_crops`).
    """
    if faces is None:
        landmarks = [face.landmarks for face in detector.detect(image)]
    else:
        landmarks = [landmarks5(image, tuple(float(v) for v in face.box)) for face in faces]  # type: ignore[arg-type]
    if not landmarks:
        return image, 0
    aligned = [align_face(image, points, size=backend.crop_size) for points in landmarks]
    crops = backend.restore_crops(np.stack([a.crop for a in aligned]), key.material, pasted_at=pasted_at)
    out = image
    for face_crop, crop in zip(aligned, crops, strict=True):
        out = paste_back(
            out,
            face_crop,
            np.ascontiguousarray(crop),
            mask_scale=mask_scale,
            colour_match=backend.colour_match,
        )
    return out, len(landmarks)


def anonymized_mask_scale(manifest: Manifest | None, backend: Backend) -> float:
    """The face ellipse the anonymization pasted its crops with: the manifest's record, else (a /1 manifest, or
    none) the backend's default."""
    if manifest is not None and manifest.mask_scale is not None:
        return manifest.mask_scale
    return mask_scale_for(backend)


def restore_mask_scale(manifest: Manifest | None, backend: Backend, options: RestoreOptions) -> float:
    """The face ellipse restored crops are pasted with: `--mask-scale` when given, else the one the
    anonymization used (`anonymized_mask_scale`)."""
    if options.mask_scale is not None:
        return mask_scale_for(backend, options.mask_scale)
    return anonymized_mask_scale(manifest, backend)


def _restore_frame(
    image: np.ndarray,
    frame: int | None,
    inspection: Inspection,
    key: UnsealedKey,
    backend: Backend | None,
    detector: Detector,
    options: RestoreOptions,
) -> tuple[np.ndarray, int]:
    manifest = inspection.manifest
    listed = [f for f in manifest.faces if f.frame == frame] if manifest is not None else None
    if inspection.mode == "exact":
        assert manifest is not None and listed is not None
        return restore_exact(
            image, listed, manifest, key, pixels_digest(image), source=str(inspection.source)
        )
    assert backend is not None
    return restore_model(
        image,
        listed,
        backend,
        detector,
        key,
        restore_mask_scale(manifest, backend, options),
        pasted_at=anonymized_mask_scale(manifest, backend),
    )


def restore_into(staged: Path, inspection: Inspection, key: UnsealedKey, options: RestoreOptions) -> int:
    """Compute the restored image or video into `staged`; returns the number of faces restored."""
    detector = get_detector(options.detector)
    backend = inspection.model
    if inspection.kind == "image":
        assert inspection.pixels is not None
        restored, count = _restore_frame(inspection.pixels, None, inspection, key, backend, detector, options)
        write_image(staged, restored)
    else:
        info = probe_video(inspection.source)
        codec: VideoCodec = "ffv1" if staged.suffix.lower() == ".mkv" else "h264"
        count = 0
        with VideoWriter(staged, fps=info.fps, codec=codec, time_base=info.time_base) as writer:
            for number, frame in enumerate(read_timed_frames(inspection.source)):
                restored, done = _restore_frame(
                    frame.image, number, inspection, key, backend, detector, options
                )
                writer.write(restored, frame.pts)
                count += done
    if count == 0 and (inspection.manifest is None or inspection.manifest.faces):
        raise NoFaceError(f"{inspection.source}: no anonymized face was found to restore")
    return count


# ---------------------------------------------------------------- the whole restore


def open_request(
    vault: Vault, inspection: Inspection, options: RestoreOptions, *, new: bool = False
) -> access.RequestInfo:
    """Step 3: the investigator's open request for this input and case, filed now when there is none (or `new`)."""
    found = (
        None
        if new
        else access.find_open_request(vault, case=options.case, input_digest=inspection.input_sha256)
    )
    return found or access.request_restore(
        vault,
        case=options.case,
        reason=options.reason,
        input_digest=inspection.input_sha256,
        key=inspection.key_handle,
    )


def inspect_audited(vault: Vault, source: Path, options: RestoreOptions) -> Inspection:
    """Steps 1-2 as the investigator; a refusal or failure is audited (a success adds no entry)."""
    options.check()
    with vault.action("restore", role="investigator", case=options.case, reason=options.reason, record=False):
        return inspect_input(vault, Path(source), options)


def request_only(vault: Vault, source: Path, options: RestoreOptions) -> access.RequestInfo:
    """File a new restore request for `source` without restoring (`--request-only`)."""
    return open_request(vault, inspect_audited(vault, source, options), options, new=True)


def restore_path(vault: Vault, source: Path, target: Path, options: RestoreOptions) -> RestoreReport:
    """Restore `source` into `target` (steps 1-5); `ApprovalPending` (exit 3) names the request to approve."""
    inspection = inspect_audited(vault, Path(source), options)  # 1-2
    request = (
        open_request(vault, inspection, options).handle if vault.policy().require_approval else None
    )  # 3
    target = Path(target)
    if target.resolve() == inspection.source.resolve():
        raise InputError(f"{target}: the restored output would overwrite its input")
    details = {"mode": inspection.mode, "request": request, "backend": inspection.backend}
    with Staging(target.parent) as staging:
        staged = staging.path_for(target)
        with vault.action(
            "restore",
            role="investigator",
            key=inspection.key_handle,
            case=options.case,
            reason=options.reason,
            digests={"input": inspection.input_sha256},
            details=details,
        ) as act:
            seq = ledger.next_seq(act.session)  # 4
            key = keys.unseal_for_use(
                vault,
                inspection.key_handle,
                purpose="restore",
                version=inspection.key_version,
                action=act,
                request=request,
                input_digest=inspection.input_sha256,
            )
            if key.case_id != options.case:
                raise PermissionDenied(f"key {key.handle} does not belong to case {options.case}")
            count = restore_into(staged, inspection, key, options)
            output_sha256 = file_sha256(staged)
            act.digests["output"] = keyed_list_digest(vault, [output_sha256])  # restored content: keyed
            act.details["faces"] = count
            # read in the same transaction: a later read could fail after the output is published
            approvals = access.request_in(act.session, request).approvals if request else ()
        staging.publish()  # 5
    manifest = inspection.manifest
    backend = inspection.model
    report = RestoreReport(
        input=str(inspection.source),
        output=str(target),
        mode=inspection.mode,
        case_id=options.case,
        reason=options.reason,
        input_sha256=inspection.input_sha256,
        output_sha256=output_sha256,
        key_handle=key.handle,
        key_version=key.version,
        backend=inspection.backend,
        model_id=manifest.model_id if manifest else getattr(backend, "model_id", None),
        model_sha256=manifest.model_sha256 if manifest else getattr(backend, "model_sha256", None),
        faces_listed=len(manifest.faces) if manifest else count,
        faces_restored=count,
        audit_seq=seq,
        anonymize_audit_seq=manifest.audit_seq if manifest else None,
        request=request,
        approvals=[
            {
                "approver": a.approver,
                "approved": a.created.isoformat(),
                "used": a.used.isoformat() if a.used else None,
            }
            for a in approvals
        ],
    )
    atomic_write_bytes(report_path(target), json.dumps(report.as_dict(), indent=2).encode())
    return report
