"""Restore one anonymized file: check it, choose key version and mode, and compute the restored pixels.

The steps for one input (the case around them, with its request, audit entry and publishing, is
`ifadit.pipeline.restore`):
  1. read the input and its manifest; verify the signature with the vault's public key, that the
     manifest belongs to this vault and that the pixels are the ones it describes (else exit 4);
  2. choose the key version the manifest names (or `--key` for a copy without manifest) and the mode:
     `--exact` opens the sealed original regions, otherwise the backend runs backwards; refuse up front
     what cannot be restored (a non-reversible backend without sealed originals);
  3. compute the restored image or video into a staging path; a model restore carries the corner label
     and the notice of `ifadit.pipeline.restore_label` (a lead, not an identification).
A wrong key in model mode is not an error: it yields a plausible wrong face.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ifadit.backends.base import Backend, get_backend, is_reversible
from ifadit.errors import BackendUnavailable, InputError, ManifestError, NoFaceError
from ifadit.faces.align import align_face
from ifadit.faces.blend import paste_back
from ifadit.faces.detect import Detector, landmarks5
from ifadit.faces.registry import get_detector
from ifadit.media.digests import file_sha256, frames_digest
from ifadit.media.image import read_image, write_image
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
from ifadit.pipeline.restore_label import MODEL_NOTICE, NOTICE_KEY, Box, draw_label
from ifadit.pipeline.restore_plan import Mode, RestoreOptions
from ifadit.pipeline.sealing import SealBinding, unseal_face
from keyvault import UnsealedKey, Vault, key_fingerprint, verify_detached

Located = list[tuple[tuple[float, float, float, float], np.ndarray]]  # face boxes and their 5 landmarks
OnFaces = Callable[[int], None]  # told how many faces each restored frame held (progress)


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


def _backend(name: str, models: dict[str, Backend]) -> Backend:
    """The backend `name`, built once per batch (`models` keeps it for the batch's other files)."""
    if name not in models:
        models[name] = get_backend(name)
    return models[name]


def _inspect_copy(
    source: Path,
    kind: ItemKind,
    pixels: np.ndarray | None,
    options: RestoreOptions,
    models: dict[str, Backend],
) -> Inspection:
    """Step 2 for a copy without manifest: only a model restore with `--key` and a reversible `--backend`."""
    if options.exact:
        raise InputError(f"{source}: carries no manifest, so no sealed originals: nothing to restore exactly")
    if options.key is None:
        raise InputError(f"{source}: carries no manifest", hint="pass --key HANDLE to try a model restore")
    if not is_reversible(options.backend):
        raise BackendUnavailable(f"backend {options.backend!r} is not reversible: nothing can be restored")
    backend = _backend(options.backend, models)
    return Inspection(
        source, kind, file_sha256(source), None, options.key, None, options.backend, "model", pixels, backend
    )


def inspect_input(
    vault: Vault, source: Path, options: RestoreOptions, models: dict[str, Backend] | None = None
) -> Inspection:
    """Steps 1-2: verify the manifest against this vault and the pixels, pick key version and mode.

    `models` holds the backends built so far in this batch, so a case's files share one model.
    """
    models = {} if models is None else models
    kind = kind_of(source)
    if not source.is_file():
        raise InputError(f"{source}: no such file")
    manifest = read_manifest(source)  # 1
    digest, pixels = _input_pixels(source, kind, options.max_pixels)
    if manifest is None:  # 2
        return _inspect_copy(source, kind, pixels, options, models)
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
    model = None if options.exact else _backend(manifest.backend, models)
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


# ---------------------------------------------------------------- step 3: restore pixels


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


def locate_faces(image: np.ndarray, faces: list[FaceRecord] | None, detector: Detector) -> Located:
    """The faces a model restore works on: the boxes a manifest lists, with the 5 landmarks re-read inside each
    box from the anonymized pixels (so a surrogate the detector would miss is still restored); without a
    manifest, the faces the detector finds."""
    if faces is None:
        return [(face.box, face.landmarks) for face in detector.detect(image)]
    located: Located = []
    for face in faces:
        box = tuple(float(v) for v in face.box)
        located.append((box, landmarks5(image, box)))  # type: ignore[arg-type]
    return located


def restore_model(
    image: np.ndarray,
    located: Located,
    backend: Backend,
    key: UnsealedKey,
    mask_scale: float,
    pasted_at: float | None = None,
) -> tuple[np.ndarray, int]:
    """Run the backend backwards on the `located` faces of `image`, pasting the restored crops at `mask_scale`.

    `pasted_at`: the scale the anonymization pasted with, for backends that model it (`Backend.restore_crops`).
    """
    if not located:
        return image, 0
    aligned = [align_face(image, points, size=backend.crop_size) for _, points in located]
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
    return out, len(located)


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
    detector: Detector,
    options: RestoreOptions,
) -> tuple[np.ndarray, int, Box | None]:
    """One image or frame restored; a model restore's also labelled (the label's box is returned)."""
    manifest = inspection.manifest
    listed = [f for f in manifest.faces if f.frame == frame] if manifest is not None else None
    if inspection.mode == "exact":
        assert manifest is not None and listed is not None
        restored, count = restore_exact(
            image, listed, manifest, key, pixels_digest(image), source=str(inspection.source)
        )
        return restored, count, None
    backend = inspection.model
    assert backend is not None
    located = locate_faces(image, listed, detector)
    restored, count = restore_model(
        image,
        located,
        backend,
        key,
        restore_mask_scale(manifest, backend, options),
        pasted_at=anonymized_mask_scale(manifest, backend),
    )
    labelled, box = draw_label(restored, [face_box for face_box, _ in located])
    return labelled, count, box


def _write_restored_image(staged: Path, image: np.ndarray, mode: Mode) -> None:
    """Write a restored still; a model restore's PNG also carries the notice as a text chunk."""
    notice = mode == "model" and staged.suffix.lower() == ".png"
    write_image(staged, image, extra_png_text={NOTICE_KEY: MODEL_NOTICE} if notice else None)


def restore_into(
    staged: Path,
    inspection: Inspection,
    key: UnsealedKey,
    options: RestoreOptions,
    on_faces: OnFaces | None = None,
) -> tuple[int, Box | None]:
    """Compute the restored image or video into `staged`: (faces restored, the model label's box or None).

    `on_faces` is told the faces of each frame as it is restored (a progress bar in faces).
    """
    detector = get_detector(options.detector)
    tell = on_faces or (lambda faces: None)
    if inspection.kind == "image":
        assert inspection.pixels is not None
        restored, count, box = _restore_frame(inspection.pixels, None, inspection, key, detector, options)
        _write_restored_image(staged, restored, inspection.mode)
        tell(count)
    else:
        info = probe_video(inspection.source)
        codec: VideoCodec = "ffv1" if staged.suffix.lower() == ".mkv" else "h264"
        count, box = 0, None
        with VideoWriter(staged, fps=info.fps, codec=codec, time_base=info.time_base) as writer:
            for number, frame in enumerate(read_timed_frames(inspection.source)):
                restored, done, box = _restore_frame(frame.image, number, inspection, key, detector, options)
                writer.write(restored, frame.pts)
                count += done
                tell(done)
    if count == 0 and (inspection.manifest is None or inspection.manifest.faces):
        raise NoFaceError(f"{inspection.source}: no anonymized face was found to restore")
    return count, box
