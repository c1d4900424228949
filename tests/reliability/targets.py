"""The parsers under fuzz, each wrapped as `check_<target>(data, folder)`: feed bytes, assert the contract.

The contract: a result or the one typed error the parser documents, never another exception. A caller
that sees any other exception stores the input in the regression corpus (`tests/reliability/corpus.py`).
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from ifadit.errors import InputError, ManifestError
from ifadit.media.image import read_image
from ifadit.media.manifest import Manifest, read_manifest
from keyvault.errors import AuditVerificationError
from keyvault.verify import VerifyReport, verify_bundle
from tests.reliability import corpus

FUZZ_MAX_PIXELS = 4_000_000  # a mutated header may claim any size; the limit must refuse it before decoding
_SCRATCH = tempfile.TemporaryDirectory(prefix="ifadit-fuzz-")  # removed when the test process ends


def fresh_folder() -> Path:
    """An empty folder for one fuzz example, inside a scratch folder removed at exit."""
    return Path(tempfile.mkdtemp(dir=_SCRATCH.name))


def check_image(data: bytes, folder: Path) -> None:
    """`read_image`: an RGB uint8 HxWx3 array within the pixel limit, or one `InputError`."""
    path = folder / "input.img"
    path.write_bytes(data)
    try:
        image = read_image(path, max_pixels=FUZZ_MAX_PIXELS)
    except InputError as exc:
        assert str(path) in str(exc), "the error names the file"
        return
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert image.shape[0] * image.shape[1] <= FUZZ_MAX_PIXELS


def check_manifest_json(data: bytes, folder: Path) -> None:
    """`Manifest.from_json`: a manifest that survives a canonical round trip, or one `ManifestError`."""
    try:
        manifest = Manifest.from_json(data, source="fuzz")
    except ManifestError as exc:
        assert str(exc).startswith("fuzz: ")
        return
    assert Manifest.from_json(manifest.to_json()) == manifest


def _check_read_manifest(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        manifest = read_manifest(path)
    except ManifestError:
        return
    assert manifest is None or isinstance(manifest, Manifest)


def check_manifest_png(data: bytes, folder: Path) -> None:
    """`read_manifest` on a PNG file: a manifest, None, or one `ManifestError`."""
    _check_read_manifest(folder / "fuzz.png", data)


def check_manifest_jpeg(data: bytes, folder: Path) -> None:
    """`read_manifest` on a JPEG file: a manifest, None, or one `ManifestError`."""
    _check_read_manifest(folder / "fuzz.jpg", data)


def check_sidecar(data: bytes, folder: Path) -> None:
    """`read_manifest` on an output with a sidecar: the sidecar is read first, whatever the output holds."""
    (folder / "fuzz.webp.ifadit.json").write_bytes(data)
    _check_read_manifest(folder / "fuzz.webp", b"")


def check_bundle(data: bytes, folder: Path) -> VerifyReport | None:
    """`verify_bundle`: a `VerifyReport` or one `AuditVerificationError`; returns the report (None if refused)."""
    path = folder / "bundle.jsonl"
    path.write_bytes(data)
    try:
        return verify_bundle(path)
    except AuditVerificationError as exc:
        assert exc.exit_code == 4 and str(exc)
        return None


CHECKS = {
    "image": check_image,
    "manifest-json": check_manifest_json,
    "manifest-png": check_manifest_png,
    "manifest-jpeg": check_manifest_jpeg,
    "bundle": check_bundle,
}


def run_check(target: str, data: bytes, folder: Path) -> None:
    """Run one target's check; store the input in the corpus if it breaks the contract, then re-raise."""
    try:
        CHECKS[target](data, folder)
    except BaseException as exc:
        if not isinstance(exc, KeyboardInterrupt):
            corpus.save(target, data)
        raise


def encoded(image: np.ndarray, fmt: str, **params: object) -> bytes:
    """`image` encoded in memory by Pillow (seeds for mutation)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, fmt, **params)
    return buffer.getvalue()
