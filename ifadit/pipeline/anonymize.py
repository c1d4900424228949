"""Anonymize one image under a vault key: the numbered steps, the run context and the per-item result.

The steps, per still image (`anonymize_image_item`; videos run steps 2-5 per frame, see
`ifadit.pipeline.anonymize_video`):
  1. read the file safely (pixel limit, EXIF orientation; EXIF/GPS reach the output only with
     `--keep-metadata`, and GPS and serials then only when asked, `ifadit.media.metadata`);
  2. detect faces with 5-point landmarks;
  3. align each face to the backend's canonical crop;
  4. run the backend on the crops with the key material;
  5. paste the new crops back under the feathered face mask;
  6. write the pixels into the run's staging folder and digest what a reader will decode;
  7. draft the manifest: a fresh manifest id, face boxes, key handle + version, and with `--seal-original`
     each original face region sealed under a context bound to that digest, to the region's box and the
     image shape, and to the manifest's identity (`ifadit.pipeline.sealing`);
  8. (`finish_item`, on the driver, inside the run's audited transaction) stamp the draft with the run's
     audit sequence number, sign it with the vault's key and embed it without touching the pixels.

`anonymize_item` (steps 1-7) needs no vault: an engine may run it on workers holding the key material in
memory; only `finish_item` signs. The serial engine is `ifadit.pipeline.batch.anonymize_paths`.
Same input + same key + same options give identical output pixels; the manifests of two runs differ in
their run-specific fields (`audit_seq`, `manifest_id`, and the random nonces of sealed payloads).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ifadit import __version__
from ifadit.backends.base import BACKENDS, Backend
from ifadit.faces.align import AlignedFace, align_face
from ifadit.faces.blend import default_mask_scale, paste_back
from ifadit.faces.detect import Detector, Face
from ifadit.faces.registry import DETECTORS, get_detector
from ifadit.media.digests import file_sha256
from ifadit.media.files import DEFAULT_MAX_PIXELS
from ifadit.media.image import read_image
from ifadit.media.manifest import FaceRecord, Manifest, new_manifest_id, sign_manifest
from ifadit.media.metadata import kept_metadata
from ifadit.pipeline.inputs import Item, ItemKind
from ifadit.pipeline.outputs import embed_manifest, write_pixels
from ifadit.pipeline.sealing import SealBinding, changed_region, seal_face
from ifadit.pipeline.track_video import Confirmation
from keyvault import UnsealedKey

MANIFEST_PURPOSE = "manifest"  # purpose of the vault's detached signature over a manifest
BOX_COLOUR = (0, 255, 0)  # RGB of the boxes `--boxes` draws


@dataclass(frozen=True)
class AnonymizeOptions:
    """How a run anonymizes; checked up front by `check`."""

    backend: str = "blur"  # registry name (ifadit.backends.base.BACKENDS)
    seal_original: bool = False  # seal each original face region into the manifest for an exact restore
    detector: str = "hog"  # ifadit.faces.registry.DETECTORS
    thresh: float | None = None  # detector score threshold (None: the detector's own); lower finds more faces
    scale: tuple[int, int] | None = None  # (W, H) to detect at, or None for full resolution
    upsample: int = 0  # image doublings before detection (smaller faces, slower)
    insightface_pack: Path | None = (
        None  # "insightface" detector's model pack; None: $IFADIT_INSIGHTFACE_PACK
    )
    mask_scale: float | None = None  # size of the pasted face ellipse (> 1 also covers hair line and chin);
    # None: the backend's default (`mask_scale_for`)
    keep_audio: bool = False  # copy a video's audio packets unchanged
    lossless: bool = False  # video: FFV1 in .mkv (bit-exact frames) instead of H.264
    crf: int | None = None  # video: H.264 constant rate factor, 0 (best) .. 51; None: DEFAULT_CRF (18)
    encoder_options: tuple[tuple[str, str], ...] = ()  # video: FFmpeg encoder options (--ffmpeg-config)
    boxes: bool = False  # draw each replaced face's detection box onto the output
    max_pixels: int = DEFAULT_MAX_PIXELS  # refuse larger images before decoding
    backend_options: tuple[tuple[str, Any], ...] = ()  # (name, value) pairs for the backend's constructor
    keep_metadata: bool = False  # images: keep EXIF and ICC (GPS and serials still dropped unless kept below)
    keep_gps: bool = False  # with keep_metadata: also keep the EXIF GPS block
    keep_serial: bool = False  # with keep_metadata: also keep camera/lens serial numbers and maker notes
    confirm_frames: int = 5  # video: look-ahead frames a track has to be confirmed in (1: every detection)
    confirm_hits: int = 2  # video: detections a track needs within confirm_frames
    confirm_score: float | None = (
        None  # video: mean score a track needs; None: the detector's threshold + margin
    )

    def check(self) -> None:
        """Raise `ValueError` naming the first invalid option."""
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; choose one of {', '.join(sorted(BACKENDS))}")
        if self.detector not in DETECTORS:
            raise ValueError(f"unknown detector {self.detector!r}; choose one of {', '.join(DETECTORS)}")
        if self.insightface_pack is not None and self.detector != "insightface":
            raise ValueError(
                f"an insightface pack applies to the insightface detector only, not {self.detector!r}"
            )
        if self.mask_scale is not None and self.mask_scale <= 0:
            raise ValueError(f"mask_scale must be > 0, got {self.mask_scale}")
        if self.upsample < 0 or self.max_pixels < 1:
            raise ValueError("upsample must be >= 0 and max_pixels >= 1")
        if self.crf is not None and (self.lossless or not 0 <= self.crf <= 51):
            raise ValueError(f"crf applies to H.264 video (not --lossless) and must be 0..51, got {self.crf}")
        if self.boxes and self.seal_original:
            raise ValueError(
                "--boxes draws outside the sealed face regions: an exact restore could not remove it"
            )
        if self.confirm_frames < 1 or not 1 <= self.confirm_hits <= self.confirm_frames:
            raise ValueError(
                f"need confirm_frames >= 1 and 1 <= confirm_hits <= confirm_frames, "
                f"got {self.confirm_frames} and {self.confirm_hits}"
            )

    def build_detector(self) -> Detector:
        """The run's face detector from these options (loads its model: once per process or worker)."""
        return get_detector(
            self.detector,
            thresh=self.thresh,
            scale=self.scale,
            upsample=self.upsample,
            pack_dir=self.insightface_pack,
        )

    def confirmation(self, detector: Detector) -> Confirmation:
        """When a video's tracked faces are replaced, for the run's `detector`."""
        return Confirmation.for_detector(
            detector, window=self.confirm_frames, min_hits=self.confirm_hits, min_score=self.confirm_score
        )


@dataclass(frozen=True)
class ManifestStamp:
    """The manifest fields shared by every output of one run."""

    backend: str
    vault_id: str
    signing_key_id: str  # fingerprint of the vault's Ed25519 public key
    mask_scale: float  # the face ellipse this run pastes (`mask_scale_for`), recorded in every manifest
    key_handle: str | None = None
    key_version: int | None = None
    model_id: str | None = None
    model_sha256: str | None = None
    tool_version: str = __version__

    def manifest(self, pixels_sha256: str, faces: Sequence[FaceRecord], manifest_id: str) -> Manifest:
        """An unsigned manifest draft for one output (`finish_item` adds the audit sequence number)."""
        return Manifest(
            backend=self.backend,
            vault_id=self.vault_id,
            signing_key_id=self.signing_key_id,
            pixels_sha256=pixels_sha256,
            tool_version=self.tool_version,
            faces=tuple(faces),
            model_id=self.model_id,
            model_sha256=self.model_sha256,
            key_handle=self.key_handle,
            key_version=self.key_version,
            mask_scale=self.mask_scale,
            manifest_id=manifest_id,
        )

    def binding(self, manifest_id: str, key: UnsealedKey) -> SealBinding:
        """What the sealed regions of the output named `manifest_id` are bound to (`ifadit.pipeline.sealing`)."""
        return SealBinding(
            manifest_id=manifest_id,
            vault_id=self.vault_id,
            backend=self.backend,
            model_id=self.model_id,
            model_sha256=self.model_sha256,
            key_handle=key.handle,
            key_version=key.version,
        )


def mask_scale_for(backend: Backend, chosen: float | None = None) -> float:
    """The face ellipse a backend's crops are pasted with: `chosen` when the user named one, else the backend's
    default (`ifadit.faces.blend.default_mask_scale`: 1.0, or `REVERSIBLE_MASK_SCALE` for a reversible
    backend; `scripts/paste_back_restore.py` measures why)."""
    return chosen if chosen is not None else default_mask_scale(backend.reversible)


@dataclass(frozen=True)
class RunContext:
    """Everything the per-item function needs, built once per run by an engine."""

    options: AnonymizeOptions
    backend: Backend
    detector: Detector
    stamp: ManifestStamp
    key: UnsealedKey | None = field(default=None, repr=False)

    @property
    def mask_scale(self) -> float:
        """The face ellipse this run pastes: the one its manifests record (the stamp's)."""
        return self.stamp.mask_scale

    @property
    def material(self) -> bytes | None:
        """The key material handed to the backend (None for a run without a key)."""
        return self.key.material if self.key is not None else None


@dataclass(frozen=True)
class ItemResult:
    """What happened to one input."""

    source: Path
    target: Path
    kind: ItemKind
    faces: int = 0
    input_sha256: str | None = None  # SHA-256 of the input file
    output_sha256: str | None = None  # SHA-256 of the output file (as published; set by `finish_item`)
    staged: Path | None = None  # where the output waits until the run publishes it
    manifest: Manifest | None = field(default=None, repr=False)  # draft, then signed by `finish_item`
    error: str | None = None
    exit_code: int = 0
    resumed: bool = False  # published by an earlier run of the same job and verified (not redone)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "input": str(self.source),
            "output": None if self.error else str(self.target),
            "kind": self.kind,
            "faces": self.faces,
            "input_sha256": self.input_sha256,
            "output_sha256": self.output_sha256,
            "error": self.error,
            "resumed": self.resumed,
        }


# ---------------------------------------------------------------- per-frame and per-item steps


def anonymize_frame(
    image: np.ndarray, faces: Sequence[Face], ctx: RunContext
) -> tuple[np.ndarray, list[AlignedFace]]:
    """Steps 3-5 on one frame: the anonymized pixels and the aligned crops that were replaced.

    A backend whose `replaces` is False ("none") leaves the pixels as they are; `--boxes` then draws each
    face's detection box onto the result."""
    if not faces:
        return image, []
    aligned = [align_face(image, face.landmarks, size=ctx.backend.crop_size) for face in faces]  # 3
    out = image
    if getattr(ctx.backend, "replaces", True):
        crops = ctx.backend.anonymize_crops(np.stack([a.crop for a in aligned]), ctx.material)  # 4
        for face_crop, new_crop in zip(aligned, crops, strict=True):  # 5
            out = paste_back(
                out,
                face_crop,
                np.ascontiguousarray(new_crop),
                mask_scale=ctx.mask_scale,
                colour_match=ctx.backend.colour_match,
            )
    return (draw_boxes(out, faces) if ctx.options.boxes else out), aligned


def draw_boxes(image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
    """A copy of `image` with each face's detection box outlined in BOX_COLOUR (about 1/200 of the frame wide)."""
    out = image.copy()
    thickness = max(1, round(min(image.shape[:2]) / 200))
    for face in faces:
        x0, y0, x1, y1 = integer_box(face.box, image.shape)
        cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), BOX_COLOUR, thickness)
    return out


def integer_box(box: tuple[float, float, float, float], shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """A detection box as whole pixels covering it, clipped to the frame and never empty."""
    height, width = shape[:2]
    x0, y0 = min(int(np.floor(box[0])), width - 1), min(int(np.floor(box[1])), height - 1)
    x1, y1 = max(int(np.ceil(box[2])), x0 + 1), max(int(np.ceil(box[3])), y0 + 1)
    return max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)


def face_records(
    original: np.ndarray,
    pixels_sha256: str,
    faces: Sequence[Face],
    aligned: Sequence[AlignedFace],
    ctx: RunContext,
    manifest_id: str,
    *,
    first_index: int = 0,
    frame: int | None = None,
    track_ids: Sequence[int] | None = None,
) -> list[FaceRecord]:
    """Step 6's face list; with `--seal-original` each record carries its sealed original region."""
    records = []
    for offset, (face, face_crop) in enumerate(zip(faces, aligned, strict=True)):
        index = first_index + offset
        sealed = None
        if ctx.options.seal_original:
            assert ctx.key is not None, "sealing needs a key (checked when the run starts)"
            region = changed_region(face_crop, original.shape, ctx.mask_scale)
            sealed = seal_face(
                ctx.key.material,
                original,
                region,
                ctx.stamp.binding(manifest_id, ctx.key),
                pixels_sha256=pixels_sha256,
                face=index,
                frame=frame,
            )
        records.append(
            FaceRecord(
                index=index,
                box=integer_box(face.box, original.shape),
                track_id=track_ids[offset] if track_ids is not None else None,
                sealed=sealed,
                frame=frame,
            )
        )
    return records


def anonymize_image_item(item: Item, ctx: RunContext, staged: Path) -> ItemResult:
    """Steps 1-7 for one still image, written to `staged` (its manifest still a draft)."""
    image = read_image(item.source, max_pixels=ctx.options.max_pixels)  # 1
    faces = ctx.detector.detect(image)  # 2
    pixels, aligned = anonymize_frame(image, faces, ctx)  # 3-5
    kept = (
        kept_metadata(item.source, keep_gps=ctx.options.keep_gps, keep_serial=ctx.options.keep_serial)
        if ctx.options.keep_metadata
        else None
    )
    digest = write_pixels(staged, pixels, kept)  # 6
    manifest_id = new_manifest_id()  # 7
    draft = ctx.stamp.manifest(
        digest, face_records(image, digest, faces, aligned, ctx, manifest_id), manifest_id
    )
    return ItemResult(
        item.source,
        item.target,
        item.kind,
        faces=len(faces),
        input_sha256=file_sha256(item.source),
        staged=staged,
        manifest=draft,
    )


def finish_item(result: ItemResult, audit_seq: int, signer: Callable[[bytes], bytes]) -> ItemResult:
    """Step 8: stamp the draft with the run's audit entry, sign it, embed it; the result with its file digest."""
    assert result.manifest is not None and result.staged is not None, "finish_item needs a successful item"
    manifest = sign_manifest(replace(result.manifest, audit_seq=audit_seq), signer)
    embed_manifest(result.staged, manifest)
    return replace(result, manifest=manifest, output_sha256=file_sha256(result.staged))
