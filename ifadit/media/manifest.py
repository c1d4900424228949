"""The signed manifest every output carries: what was done to which faces, under which key and model.

Format `ifadit-manifest/3`, canonical JSON (sorted keys, compact separators, UTF-8). Version 2 added
`mask_scale` (the pasted face ellipse, which restore pastes with too); version 3 added `manifest_id`, a random
name given to each output before its faces are sealed, and seals every original region under associated data
that binds the region's box, the image shape and the manifest's identity (`ifadit.pipeline.sealing`).
Versions 1 and 2 are still read and verified, but their sealed regions are not bound to where they sit, so
exact restore refuses them (`LEGACY_SEAL_FORMATS`): an insider able to re-sign could otherwise move them.
It travels
- in a PNG as an iTXt chunk with keyword ``ifadit-manifest``;
- in a JPEG as one APP11 segment starting with ``IFADIT\\0`` (when it fits in a segment);
- otherwise (video, large sealed payloads, other formats) in a sidecar ``<output>.ifadit.json``.

The signature (Ed25519 by the vault's audit key, made through a callable so this module stays free of
crypto) covers every other field. `pixels_sha256` binds the manifest to the anonymized pixels it
describes; no unkeyed digest of the original content is ever stored here (a public viewer must not be able
to confirm a guessed original). Run-specific fields (`audit_seq`, `manifest_id`, sealed payloads with
their random nonces) make two manifests of the same input differ; the pixels do not.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, UnidentifiedImageError

from ifadit.errors import InputError, ManifestError
from ifadit.media.files import read_jpeg_app11

if TYPE_CHECKING:
    import numpy as np

MANIFEST_FORMAT = "ifadit-manifest/3"
LEGACY_SEAL_FORMATS = ("ifadit-manifest/1", "ifadit-manifest/2")  # sealed regions not bound to their box
READABLE_FORMATS = (*LEGACY_SEAL_FORMATS, MANIFEST_FORMAT)  # /1 has no mask_scale, /1 and /2 no manifest_id
MANIFEST_ID = re.compile(r"mf_[0-9a-f]{32}")  # `new_manifest_id`
PNG_TEXT_KEY = "ifadit-manifest"
JPEG_APP11_PREFIX = b"IFADIT\x00"
JPEG_SEGMENT_LIMIT = 65533 - len(JPEG_APP11_PREFIX)  # APP payload bytes available after our prefix
SIDECAR_SUFFIX = ".ifadit.json"

Signer = Callable[[bytes], bytes]
Verifier = Callable[[bytes, bytes], bool]


@dataclass(frozen=True)
class SealedRegion:
    """An original face region sealed for exact restore (`--seal-original`); all fields are opaque."""

    region: tuple[int, int, int, int]  # x0, y0, x1, y1 in output pixels, x1/y1 exclusive
    wrapped_key: str  # base64: per-image data key sealed under the case key
    ciphertext: str  # base64: the region's raw RGB bytes sealed under the data key
    commitment: str  # hex: keyed commitment (HMAC) of the original region, checked after unsealing


@dataclass(frozen=True)
class FaceRecord:
    """One anonymized face: where it is, which track it belongs to, and its sealed original if any."""

    index: int
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in output pixels
    track_id: int | None = None
    sealed: SealedRegion | None = None
    frame: int | None = None  # video frame number (0-based, decoding order); None for a still image


@dataclass(frozen=True)
class Manifest:
    """Everything a restore needs to know about an output, signed by the vault."""

    backend: str
    vault_id: str
    signing_key_id: str  # fingerprint of the vault's Ed25519 public key
    pixels_sha256: str  # see `pixels_digest`
    tool_version: str
    faces: tuple[FaceRecord, ...] = ()
    model_id: str | None = None
    model_sha256: str | None = None
    key_handle: str | None = None
    key_version: int | None = None
    audit_seq: int | None = None
    mask_scale: float | None = None  # face ellipse the replacements were pasted with (None: a /1 manifest)
    manifest_id: str | None = None  # this output's random name, bound into its sealed regions (None: /1, /2)
    format: str = MANIFEST_FORMAT
    signature: str | None = field(default=None, compare=False)

    def signing_bytes(self) -> bytes:
        """Canonical bytes of every field but the signature: what the vault signs."""
        body = _to_plain(self)
        body.pop("signature")
        return _canonical(body)

    def to_json(self) -> str:
        """The manifest as canonical JSON text (signature included)."""
        return _canonical(_to_plain(self)).decode("utf-8")

    @classmethod
    def from_json(cls, text: str | bytes, *, source: str = "manifest") -> Manifest:
        """Parse and validate; `ManifestError` names the source and the offending field."""
        try:
            raw = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise ManifestError(f"{source}: manifest is not valid JSON ({exc.__class__.__name__})") from None
        return _from_plain(raw, source)


def new_manifest_id() -> str:
    """A fresh random manifest identity (``mf_`` and 128 random bits in hex), drawn before faces are sealed."""
    return "mf_" + secrets.token_hex(16)


def pixels_digest(image: np.ndarray) -> str:
    """SHA-256 of the decoded output pixels (shape and RGB bytes), hex."""
    if image.dtype != "uint8" or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError("pixels_digest expects an RGB uint8 HxWx3 array")
    header = f"ifadit-pixels/1:{image.shape[0]}x{image.shape[1]}:".encode()
    return hashlib.sha256(header + image.tobytes(order="C")).hexdigest()


def sign_manifest(manifest: Manifest, signer: Signer) -> Manifest:
    """Return the manifest with its signature set by `signer` (the vault's Ed25519 key)."""
    signature = signer(manifest.signing_bytes())
    return replace(manifest, signature=base64.b64encode(signature).decode("ascii"))


def verify_manifest(manifest: Manifest, verifier: Verifier, *, source: str = "manifest") -> None:
    """Raise `ManifestError` unless the signature is present and verifies under the vault's key."""
    if not manifest.signature:
        raise ManifestError(f"{source}: manifest is not signed")
    try:
        signature = base64.b64decode(manifest.signature, validate=True)
    except (binascii.Error, ValueError):
        raise ManifestError(f"{source}: manifest signature is not valid base64") from None
    if not verifier(signature, manifest.signing_bytes()):
        raise ManifestError(
            f"{source}: manifest signature does not verify",
            hint="the manifest was edited, or it was signed by another vault",
        )


def embedding_for(path: Path, manifest: Manifest) -> dict[str, Any]:
    """Keyword arguments for `ifadit.media.image.write_image` that embed the manifest in `path`'s format.

    Returns an empty dict when the manifest must go to a sidecar instead (see `needs_sidecar`).
    """
    text = manifest.to_json()
    suffix = path.suffix.lower()
    if suffix == ".png":
        return {"extra_png_text": {PNG_TEXT_KEY: text}}
    if suffix in {".jpg", ".jpeg"} and len(text.encode("utf-8")) <= JPEG_SEGMENT_LIMIT:
        return {"jpeg_app11": text.encode("utf-8")}  # write_image adds the IFADIT\0 tag
    return {}


def needs_sidecar(path: Path, manifest: Manifest) -> bool:
    """True when `path`'s format cannot carry this manifest inside the file."""
    return not embedding_for(path, manifest)


def sidecar_path(path: Path) -> Path:
    """Where the sidecar manifest of `path` lives."""
    return path.with_name(path.name + SIDECAR_SUFFIX)


def read_manifest(path: Path) -> Manifest | None:
    """The manifest embedded in `path` or in its sidecar, or None when it has none.

    A present but malformed manifest raises `ManifestError`; the signature is not checked here.
    """
    sidecar = sidecar_path(path)
    if sidecar.is_file():
        return Manifest.from_json(sidecar.read_bytes(), source=str(sidecar))
    try:
        with Image.open(path) as img:
            if img.format == "PNG":
                text = img.text.get(PNG_TEXT_KEY)  # type: ignore[attr-defined]
                return None if text is None else Manifest.from_json(text, source=str(path))
            is_jpeg = img.format == "JPEG"
    except (UnidentifiedImageError, OSError):
        return None
    if is_jpeg:
        try:
            payload = read_jpeg_app11(path)
        except InputError as exc:
            problem = str(exc).removeprefix(f"{path}: ")
            raise ManifestError(f"{path}: cannot read the manifest segments ({problem})") from None
        return None if payload is None else Manifest.from_json(payload, source=str(path))
    return None


# ------------------------------------------------------------------ canonical form and validation


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _to_plain(manifest: Manifest) -> dict[str, Any]:
    """Nested dicts; tuples stay tuples, which JSON writes as arrays. A manifest without `mask_scale` (format
    1) or `manifest_id` (formats 1, 2) leaves the field out, so the bytes its writer signed are the bytes
    verified."""
    plain = asdict(manifest)
    for optional in ("mask_scale", "manifest_id"):
        if plain[optional] is None:
            del plain[optional]
    return plain


_REQUIRED_STR = ("backend", "vault_id", "signing_key_id", "pixels_sha256", "tool_version", "format")
_OPTIONAL_STR = ("model_id", "model_sha256", "key_handle", "signature")
_OPTIONAL_INT = ("key_version", "audit_seq")
_SEALED_FIELDS = {"region", "wrapped_key", "ciphertext", "commitment"}


def _from_plain(raw: Any, source: str) -> Manifest:
    def fail(what: str) -> ManifestError:
        return ManifestError(f"{source}: {what}")

    if not isinstance(raw, Mapping):
        raise fail("manifest is not a JSON object")
    known = {*_REQUIRED_STR, *_OPTIONAL_STR, *_OPTIONAL_INT, "faces", "mask_scale", "manifest_id"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise fail(f"unknown manifest field {unknown[0]!r}")
    if raw.get("format") not in READABLE_FORMATS:
        raise fail(
            f"unsupported manifest format {raw.get('format')!r} (expected one of {', '.join(READABLE_FORMATS)})"
        )
    for name in _REQUIRED_STR:
        if not isinstance(raw.get(name), str):
            raise fail(f"manifest field {name!r} must be a string")
    for name in _OPTIONAL_STR:
        if raw.get(name) is not None and not isinstance(raw[name], str):
            raise fail(f"manifest field {name!r} must be a string or null")
    for name in _OPTIONAL_INT:
        value = raw.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise fail(f"manifest field {name!r} must be a non-negative integer or null")
    mask_scale = raw.get("mask_scale")
    if mask_scale is not None and (
        not isinstance(mask_scale, int | float)
        or isinstance(mask_scale, bool)
        or not math.isfinite(mask_scale)
        or mask_scale <= 0
    ):
        raise fail("manifest field 'mask_scale' must be a positive number or null")
    manifest_id = raw.get("manifest_id")
    if raw["format"] in LEGACY_SEAL_FORMATS:
        if manifest_id is not None:
            raise fail(f"manifest field 'manifest_id' does not exist in format {raw['format']}")
    elif not isinstance(manifest_id, str) or not MANIFEST_ID.fullmatch(manifest_id):
        raise fail("manifest field 'manifest_id' must be 'mf_' and 32 lower-case hex digits")
    faces = raw.get("faces", [])
    if not isinstance(faces, list):
        raise fail("manifest field 'faces' must be a list")
    fields: dict[str, Any] = {
        name: raw.get(name) for name in (*_REQUIRED_STR, *_OPTIONAL_STR, *_OPTIONAL_INT)
    }
    return Manifest(
        **fields,
        mask_scale=None if mask_scale is None else float(mask_scale),
        manifest_id=manifest_id,
        faces=tuple(_face_from_plain(face, i, fail) for i, face in enumerate(faces)),
    )


def _box(value: Any, what: str, fail: Callable[[str], ManifestError]) -> tuple[int, int, int, int]:
    if (
        not isinstance(value, list)
        or len(value) != 4
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        or value[0] >= value[2]
        or value[1] >= value[3]
    ):
        raise fail(f"{what} must be four integers x0 < x1, y0 < y1")
    return (value[0], value[1], value[2], value[3])


def _face_from_plain(raw: Any, position: int, fail: Callable[[str], ManifestError]) -> FaceRecord:
    where = f"face {position}"
    if not isinstance(raw, Mapping) or set(raw) - {"index", "box", "track_id", "sealed", "frame"}:
        raise fail(f"{where} is malformed")
    index, track_id, frame = raw.get("index"), raw.get("track_id"), raw.get("frame")
    if not isinstance(index, int) or isinstance(index, bool) or index != position:
        raise fail(f"{where}: index must be {position}")
    if track_id is not None and (not isinstance(track_id, int) or isinstance(track_id, bool)):
        raise fail(f"{where}: track_id must be an integer or null")
    if frame is not None and (not isinstance(frame, int) or isinstance(frame, bool) or frame < 0):
        raise fail(f"{where}: frame must be a non-negative integer or null")
    sealed = raw.get("sealed")
    if sealed is not None:
        if not isinstance(sealed, Mapping) or set(sealed) != _SEALED_FIELDS:
            raise fail(f"{where}: sealed payload is malformed")
        if not all(isinstance(sealed[k], str) for k in ("wrapped_key", "ciphertext", "commitment")):
            raise fail(f"{where}: sealed payload fields must be strings")
        sealed = SealedRegion(
            region=_box(sealed["region"], f"{where}: sealed region", fail),
            wrapped_key=sealed["wrapped_key"],
            ciphertext=sealed["ciphertext"],
            commitment=sealed["commitment"],
        )
    return FaceRecord(
        index=index,
        box=_box(raw.get("box"), f"{where}: box", fail),
        track_id=track_id,
        sealed=sealed,
        frame=frame,
    )
