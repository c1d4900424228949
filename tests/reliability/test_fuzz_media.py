"""Fuzzing the media parsers: image decoding and the pixel limit, manifests in JSON, PNG iTXt, JPEG APP11 and sidecars.

Every input gives a result or the parser's one typed error (`InputError`, `ManifestError`), never another
exception, and an anonymize run over a mutated input leaves either a complete output or nothing.
Example counts are bounded so the file stays well under a minute; `FUZZED` is what docs/security.md cites.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from skimage import data as skdata
from skimage.transform import resize

from ifadit.media.image import read_image, write_image
from ifadit.media.manifest import FaceRecord, Manifest, SealedRegion, embedding_for, read_manifest
from ifadit.pipeline.anonymize import AnonymizeOptions
from ifadit.pipeline.batch import anonymize_paths
from tests.pipeline.support import make_lab
from tests.reliability.mutate import mutations
from tests.reliability.targets import FUZZ_MAX_PIXELS, encoded, fresh_folder, run_check

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SLOWER = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

SMALL = (
    (resize(skdata.astronaut()[:256, 96:352], (64, 64), anti_aliasing=True) * 255).round().astype(np.uint8)
)
SEEDS = {
    "png": encoded(SMALL, "PNG"),
    "jpeg": encoded(SMALL, "JPEG", quality=90),
    "webp": encoded(SMALL, "WEBP", quality=80),
    "grey-png": encoded(SMALL[:, :, 0], "PNG"),
    "rgba-png": encoded(np.dstack([SMALL, SMALL[:, :, :1]]), "PNG"),
    "bmp": encoded(SMALL, "BMP"),
    "tiff": encoded(SMALL, "TIFF"),
}
MANIFEST = Manifest(
    backend="pixelate",
    vault_id="0" * 32,
    signing_key_id="ab" * 32,
    pixels_sha256="cd" * 32,
    tool_version="0.1.0",
    faces=(
        FaceRecord(index=0, box=(1, 2, 30, 40), track_id=3),
        FaceRecord(
            index=1,
            box=(5, 6, 20, 22),
            sealed=SealedRegion(
                region=(4, 5, 21, 23), wrapped_key="QUJD", ciphertext="REVG", commitment="ee" * 32
            ),
            frame=7,
        ),
    ),
    model_id="m/1",
    model_sha256="ef" * 32,
    key_handle="kh_" + "1" * 24,
    key_version=2,
    audit_seq=9,
    manifest_id="mf_" + "5" * 32,
    signature="c2ln",
)
MANIFEST_TEXT = MANIFEST.to_json().encode()


def _folder() -> Path:
    return fresh_folder()


@FAST
@given(st.binary(max_size=512))
def test_random_bytes_decode_or_fail_with_input_error(data: bytes) -> None:
    run_check("image", data, _folder())


@FAST
@given(st.sampled_from(sorted(SEEDS)).flatmap(lambda name: mutations(SEEDS[name])))
def test_mutated_images_decode_or_fail_with_input_error(data: bytes) -> None:
    run_check("image", data, _folder())


def _png_with_size(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


@FAST
@given(st.integers(1, 2**31 - 1), st.integers(1, 2**31 - 1))
def test_pixel_limit_is_enforced_from_the_header(width: int, height: int) -> None:
    """Any claimed size over the limit is refused before decoding (no allocation of width*height pixels)."""
    path = _folder() / "claims.png"
    path.write_bytes(_png_with_size(width, height))
    if width * height > FUZZ_MAX_PIXELS:
        with pytest.raises(Exception) as info:
            read_image(path, max_pixels=FUZZ_MAX_PIXELS)
        assert "over the limit" in str(info.value) or "too large" in str(info.value)
    else:
        run_check("image", path.read_bytes(), _folder())


@FAST
@given(mutations(MANIFEST_TEXT, max_ops=3))
def test_mutated_manifest_json_parses_or_fails_with_manifest_error(data: bytes) -> None:
    run_check("manifest-json", data, _folder())


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_PATHS = [
    "format",
    "backend",
    "faces",
    "key_version",
    "audit_seq",
    "signature",
    "faces.0",
    "faces.0.box",
    "faces.0.index",
    "faces.0.track_id",
    "faces.1.sealed",
    "faces.1.sealed.region",
    "faces.1.frame",
    "faces.1.sealed.ciphertext",
    "extra",
]


@FAST
@given(st.sampled_from(_PATHS), _JSON)
def test_manifest_fields_set_to_any_json_parse_or_fail_with_manifest_error(path: str, value: object) -> None:
    body = json.loads(MANIFEST_TEXT)
    *parents, last = path.split(".")
    target = body
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    run_check("manifest-json", json.dumps(body).encode(), _folder())


def test_deeply_nested_manifest_json_is_a_manifest_error() -> None:
    run_check("manifest-json", b"[" * 10_000 + b"]" * 10_000, _folder())


@SLOWER
@given(mutations(MANIFEST_TEXT, max_ops=3), st.sampled_from([".png", ".jpg"]))
def test_mutated_embedded_manifests_read_or_fail_with_manifest_error(text: bytes, suffix: str) -> None:
    """A well-formed file whose iTXt chunk / APP11 segment carries a mutated manifest."""
    folder = _folder()
    path = folder / f"carrier{suffix}"
    value = text.decode("utf-8", errors="replace")
    if suffix == ".png":
        write_image(path, SMALL, extra_png_text={"ifadit-manifest": value})
    else:
        write_image(path, SMALL, jpeg_app11=text)
    assert embedding_for(path, MANIFEST)  # the real manifest fits the same carrier
    run_check("manifest-png" if suffix == ".png" else "manifest-jpeg", path.read_bytes(), folder)


def _carriers() -> dict[str, bytes]:
    folder = _folder()
    write_image(folder / "m.png", SMALL, **embedding_for(folder / "m.png", MANIFEST))
    write_image(folder / "m.jpg", SMALL, **embedding_for(folder / "m.jpg", MANIFEST))
    assert read_manifest(folder / "m.png") == MANIFEST == read_manifest(folder / "m.jpg")
    return {"png": (folder / "m.png").read_bytes(), "jpeg": (folder / "m.jpg").read_bytes()}


CARRIERS = _carriers()  # real output files carrying MANIFEST (iTXt chunk, APP11 segment)


@FAST
@given(st.sampled_from(["png", "jpeg"]), st.data())
def test_mutated_carrier_files_read_or_fail_with_manifest_error(kind: str, data: st.DataObject) -> None:
    run_check(f"manifest-{kind}", data.draw(mutations(CARRIERS[kind])), _folder())


@FAST
@given(mutations(MANIFEST_TEXT, max_ops=3) | st.binary(max_size=256))
def test_mutated_sidecars_read_or_fail_with_manifest_error(data: bytes) -> None:
    folder = _folder()
    (folder / "out.webp.ifadit.json").write_bytes(data)
    (folder / "out.webp").write_bytes(SEEDS["webp"])
    run_check("manifest-json", data, folder)  # the sidecar holds exactly what from_json parses
    try:
        read_manifest(folder / "out.webp")
    except Exception as exc:
        assert type(exc).__name__ == "ManifestError", exc


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    return make_lab(tmp_path_factory.mktemp("lab"))


@SLOWER
@given(st.sampled_from(["png", "jpeg", "webp"]).flatmap(lambda name: mutations(SEEDS[name], max_ops=2)))
def test_anonymize_over_mutated_input_writes_a_whole_output_or_nothing(lab, data: bytes) -> None:
    folder = _folder()
    (folder / "in.png").write_bytes(data)
    with lab.open("olga") as vault:
        report = anonymize_paths(
            vault, [folder / "in.png"], folder / "out.png", AnonymizeOptions(backend="blur"), key=lab.key
        )
    outputs = sorted(p.name for p in folder.iterdir() if p.name != "in.png")
    if report.exit_code == 0:
        assert outputs == ["out.png"], (outputs, report.as_dict())
        assert read_image(folder / "out.png").shape == read_image(folder / "in.png").shape
        assert read_manifest(folder / "out.png") is not None
    else:
        assert outputs == [], outputs  # no partial file, no leftover temporary
