"""Anonymize images and videos under a vault key, with a signed manifest per output and one audit entry per run.

The steps, per still image (`anonymize_image_item`; videos run steps 2-5 per frame, see
`ifadit.pipeline.anonymize_video`):
  1. read the file safely (pixel limit, EXIF orientation; EXIF/GPS never reach the output);
  2. detect faces with 5-point landmarks;
  3. align each face to the backend's canonical crop;
  4. run the backend on the crops with the key material;
  5. paste the new crops back under the feathered face mask;
  6. build the manifest (boxes, key handle + version, audit sequence number, sealed originals with
     `--seal-original`) and sign it with the vault's key;
  7. write the output with its manifest into the run's staging folder.

The serial engine (`anonymize_paths`) runs the per-item function `anonymize_item` over every input inside
ONE vault action: the key is unsealed, used and audited in one transaction whose entry records the
digests of all inputs and outputs and the counts. Outputs are published (renamed into place) only after
that entry has committed; a bad file is reported and skipped, any other exception aborts the run and
leaves no output. Same input + same key + same options give identical output pixels; the manifests of
two runs differ in their run-specific fields (`audit_seq`, and the random nonces of sealed payloads).

Another engine (e.g. Ray Data) calls the same `anonymize_item` with the same `RunContext`: everything in it
pickles (options, backend, detector, the unsealed key held in memory only) except `signer`, which an engine
with workers replaces by a callable that asks the driver to sign (the vault's signing key never leaves the
driver); it keeps the driver-side run (`vault.action`, `ledger.next_seq`, staging, publish) as here.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ifadit import __version__
from ifadit.backends.base import BACKENDS, Backend, get_backend
from ifadit.errors import IfaditError
from ifadit.faces.align import AlignedFace, align_face
from ifadit.faces.blend import paste_back
from ifadit.faces.detect import DETECTORS, Detector, Face, get_detector
from ifadit.media.image import DEFAULT_MAX_PIXELS, read_image
from ifadit.media.manifest import FaceRecord, Manifest, sign_manifest
from ifadit.pipeline.inputs import Item, ItemKind, plan_items
from ifadit.pipeline.outputs import file_sha256, list_digest, write_image_with_manifest
from ifadit.pipeline.sealing import changed_region, seal_context, seal_face
from ifadit.pipeline.staging import Staging
from keyvault import keys, ledger
from keyvault.audit import key_fingerprint
from keyvault.errors import KeyStateError, PermissionDenied
from keyvault.keys import UnsealedKey
from keyvault.vault import Vault

MANIFEST_PURPOSE = "manifest"  # purpose of the vault's detached signature over a manifest


@dataclass(frozen=True)
class AnonymizeOptions:
    """How a run anonymizes; checked up front by `check`."""

    backend: str = "blur"  # registry name (ifadit.backends.base.BACKENDS)
    seal_original: bool = False  # seal each original face region into the manifest for an exact restore
    detector: str = "hog"  # ifadit.faces.detect.DETECTORS
    thresh: float = 0.0  # detector score threshold: lower finds more faces and more false positives
    scale: tuple[int, int] | None = None  # (W, H) to detect at, or None for full resolution
    upsample: int = 0  # image doublings before detection (smaller faces, slower)
    mask_scale: float = 1.0  # size of the pasted face ellipse; > 1 also covers hair line and chin
    keep_audio: bool = False  # copy a video's audio packets unchanged
    lossless: bool = False  # video: FFV1 in .mkv (bit-exact frames) instead of H.264
    max_pixels: int = DEFAULT_MAX_PIXELS  # refuse larger images before decoding

    def check(self) -> None:
        """Raise `ValueError` naming the first invalid option."""
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; choose one of {', '.join(sorted(BACKENDS))}")
        if self.detector not in DETECTORS:
            raise ValueError(f"unknown detector {self.detector!r}; choose one of {', '.join(DETECTORS)}")
        if self.mask_scale <= 0:
            raise ValueError(f"mask_scale must be > 0, got {self.mask_scale}")
        if self.upsample < 0 or self.max_pixels < 1:
            raise ValueError("upsample must be >= 0 and max_pixels >= 1")


@dataclass(frozen=True)
class ManifestStamp:
    """The manifest fields shared by every output of one run."""

    backend: str
    vault_id: str
    signing_key_id: str  # fingerprint of the vault's Ed25519 public key
    audit_seq: int | None  # sequence number of the run's audit entry
    key_handle: str | None = None
    key_version: int | None = None
    model_id: str | None = None
    model_sha256: str | None = None
    tool_version: str = __version__

    def manifest(self, pixels_sha256: str, faces: Sequence[FaceRecord]) -> Manifest:
        """An unsigned manifest for one output."""
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
            audit_seq=self.audit_seq,
        )


@dataclass(frozen=True)
class RunContext:
    """Everything the per-item function needs, built once per run by an engine."""

    options: AnonymizeOptions
    backend: Backend
    detector: Detector
    stamp: ManifestStamp
    signer: Callable[[bytes], bytes]  # manifest signing bytes -> Ed25519 signature (the vault's)
    key: UnsealedKey | None = field(default=None, repr=False)

    @property
    def material(self) -> bytes | None:
        """The key material handed to the backend (None for a run without a key)."""
        return self.key.material if self.key is not None else None

    def sign(self, manifest: Manifest) -> Manifest:
        """The manifest with the vault's signature."""
        return sign_manifest(manifest, self.signer)


@dataclass(frozen=True)
class ItemResult:
    """What happened to one input."""

    source: Path
    target: Path
    kind: ItemKind
    faces: int = 0
    input_sha256: str | None = None  # SHA-256 of the input file
    output_sha256: str | None = None  # SHA-256 of the output file (as published)
    pixels_sha256: str | None = None  # the manifest's pixel digest
    error: str | None = None
    exit_code: int = 0

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
        }


@dataclass(frozen=True)
class RunReport:
    """The outcome of one run."""

    items: tuple[ItemResult, ...]
    backend: str
    key_handle: str | None
    key_version: int | None
    audit_seq: int
    sealed: bool

    @property
    def failed(self) -> tuple[ItemResult, ...]:
        """The items that could not be anonymized."""
        return tuple(item for item in self.items if item.error)

    @property
    def exit_code(self) -> int:
        """0 when every item succeeded, else the highest item exit code."""
        return max((item.exit_code for item in self.items), default=0)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "backend": self.backend,
            "key_handle": self.key_handle,
            "key_version": self.key_version,
            "audit_seq": self.audit_seq,
            "sealed_originals": self.sealed,
            "files": len(self.items),
            "failed": len(self.failed),
            "faces": sum(item.faces for item in self.items),
            "items": [item.as_dict() for item in self.items],
        }


# ---------------------------------------------------------------- per-frame and per-item steps


def anonymize_frame(
    image: np.ndarray, faces: Sequence[Face], ctx: RunContext
) -> tuple[np.ndarray, list[AlignedFace]]:
    """Steps 3-5 on one frame: the anonymized pixels and the aligned crops that were replaced."""
    if not faces:
        return image, []
    aligned = [align_face(image, face.landmarks, size=ctx.backend.crop_size) for face in faces]  # 3
    crops = ctx.backend.anonymize_crops(np.stack([a.crop for a in aligned]), ctx.material)  # 4
    out = image
    for face_crop, new_crop in zip(aligned, crops, strict=True):  # 5
        out = paste_back(
            out,
            face_crop,
            np.ascontiguousarray(new_crop),
            mask_scale=ctx.options.mask_scale,
            colour_match=ctx.backend.colour_match,
        )
    return out, aligned


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
            region = changed_region(face_crop, original.shape, ctx.options.mask_scale)
            context = seal_context(pixels_sha256, index, frame, ctx.key.handle, ctx.key.version)
            sealed = seal_face(ctx.key.material, original, region, context)
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
    """Steps 1-7 for one still image, written to `staged`."""
    image = read_image(item.source, max_pixels=ctx.options.max_pixels)  # 1
    faces = ctx.detector.detect(image)  # 2
    pixels, aligned = anonymize_frame(image, faces, ctx)  # 3-5

    def make_manifest(pixels_sha256: str) -> Manifest:  # 6
        return ctx.sign(
            ctx.stamp.manifest(pixels_sha256, face_records(image, pixels_sha256, faces, aligned, ctx))
        )

    digest, _ = write_image_with_manifest(staged, pixels, make_manifest)  # 7
    return ItemResult(
        item.source,
        item.target,
        item.kind,
        faces=len(faces),
        input_sha256=file_sha256(item.source),
        output_sha256=file_sha256(staged),
        pixels_sha256=digest,
    )


def anonymize_item(item: Item, ctx: RunContext, staged: Path) -> ItemResult:
    """The per-item function every engine calls: anonymize one image or video into `staged`."""
    if item.kind == "video":
        from ifadit.pipeline.anonymize_video import anonymize_video_item

        return anonymize_video_item(item, ctx, staged)
    return anonymize_image_item(item, ctx, staged)


# ---------------------------------------------------------------- serial engine


def run_serial(
    items: Sequence[Item],
    ctx: RunContext,
    staging: Staging,
    *,
    progress: bool = False,
    on_item: Callable[[ItemResult], None] | None = None,
) -> list[ItemResult]:
    """Run `anonymize_item` over `items` in order; a bad input (IfaditError) is recorded and skipped."""
    results = []
    for item in tqdm(items, disable=not progress, file=sys.stderr, unit="file", desc="anonymize"):
        staged = staging.path_for(item.target)
        try:
            result = anonymize_item(item, ctx, staged)
        except IfaditError as exc:
            staging.drop(staged)
            result = ItemResult(item.source, item.target, item.kind, error=str(exc), exit_code=exc.exit_code)
        results.append(result)
        if on_item is not None:
            on_item(result)
    return results


def default_backend() -> str:
    """The CLI's default: "ifadit" when it is registered and its model is shipped, else "blur"."""
    target = BACKENDS.get("ifadit")
    if target is not None:
        try:
            module = importlib.import_module(target.partition(":")[0])
        except ImportError:
            return "blur"
        if module.is_shipped():
            return "ifadit"
    return "blur"


def choose_key(vault: Vault, *, key: str | None, case: str | None) -> str | None:
    """The key handle a run uses: `key`, else the newest active key of `case`, else None."""
    if key is not None or case is None:
        return key
    active = keys.list_keys(vault, case=case, state="active")
    if not active:
        raise KeyStateError(
            f"case {case} has no active key", hint="an admin issues one with `ifadit keys issue`"
        )
    return active[0].handle


def anonymize_paths(
    vault: Vault,
    inputs: Sequence[Path],
    output: Path,
    options: AnonymizeOptions,
    *,
    key: str | None = None,
    case: str | None = None,
    progress: bool = False,
    on_item: Callable[[ItemResult], None] | None = None,
) -> RunReport:
    """Anonymize files, folders (recursive) and videos into `output` as one audited run (operator role)."""
    options.check()
    items = plan_items(list(inputs), Path(output), lossless_video=options.lossless)
    backend = get_backend(options.backend)
    detector = get_detector(
        options.detector, thresh=options.thresh, scale=options.scale, upsample=options.upsample
    )
    handle = choose_key(vault, key=key, case=case)
    if handle is None and (backend.reversible or options.seal_original):
        needs = "--seal-original" if options.seal_original else f"backend {backend.name!r}"
        raise ValueError(f"{needs} needs a key: pass --key HANDLE or --case CASE")
    root = Path(output).parent if len(items) == 1 and items[0].target == Path(output) else Path(output)
    details = {"backend": backend.name, "seal_original": options.seal_original, "lossless": options.lossless}
    with Staging(root) as staging:
        with vault.action("anonymize", role="operator", key=handle, case=case, details=details) as act:
            seq = ledger.next_seq(act.session)
            unsealed = (
                keys.unseal_for_use(vault, handle, purpose="anonymize", action=act)
                if handle is not None
                else None
            )
            if unsealed is not None and case is not None and unsealed.case_id != case:
                raise PermissionDenied(f"key {handle} does not belong to case {case}")
            ctx = RunContext(
                options=options,
                backend=backend,
                detector=detector,
                stamp=ManifestStamp(
                    backend=backend.name,
                    vault_id=vault.id,
                    signing_key_id=key_fingerprint(vault.public_key),
                    audit_seq=seq,
                    key_handle=unsealed.handle if unsealed else None,
                    key_version=unsealed.version if unsealed else None,
                    model_id=getattr(backend, "model_id", None),
                    model_sha256=getattr(backend, "model_sha256", None),
                ),
                signer=lambda data: vault.sign_detached(MANIFEST_PURPOSE, data),
                key=unsealed,
            )
            results = run_serial(items, ctx, staging, progress=progress, on_item=on_item)
            done = [r for r in results if r.error is None]
            act.digests = {
                "inputs": list_digest(r.input_sha256 or "" for r in done),
                "outputs": list_digest(r.output_sha256 or "" for r in done),
            }
            act.details.update(
                files=len(done), failed=len(results) - len(done), faces=sum(r.faces for r in done)
            )
        staging.publish()
    return RunReport(
        items=tuple(results),
        backend=backend.name,
        key_handle=ctx.stamp.key_handle,
        key_version=ctx.stamp.key_version,
        audit_seq=seq,
        sealed=options.seal_original,
    )
