"""ifadit.media.image: bounded decoding of real images, every bad-input case, metadata-free atomic writes."""

from __future__ import annotations

import io
import os
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ifadit.errors import InputError
from ifadit.media.files import atomic_write_bytes, read_jpeg_app11
from ifadit.media.image import read_image, read_png_text, write_image


def _save(path: Path, pil: Image.Image, fmt: str, **params: object) -> Path:
    pil.save(path, fmt, **params)
    return path


@pytest.mark.parametrize(("suffix", "fmt"), [(".png", "PNG"), (".webp", "WEBP"), (".jpg", "JPEG")])
def test_reads_colour_formats(tmp_path: Path, astronaut: np.ndarray, suffix: str, fmt: str) -> None:
    params = {"lossless": True} if fmt == "WEBP" else {"quality": 95} if fmt == "JPEG" else {}
    path = _save(tmp_path / f"a{suffix}", Image.fromarray(astronaut), fmt, **params)
    image = read_image(path)
    assert image.dtype == np.uint8 and image.shape == astronaut.shape and image.flags.c_contiguous
    if fmt == "JPEG":
        assert np.abs(image.astype(int) - astronaut).mean() < 3
    else:
        np.testing.assert_array_equal(image, astronaut)


def test_grey_becomes_rgb(tmp_path: Path, shared_dir: Path) -> None:
    pgm = next(iter(sorted((shared_dir / "data/reid/orl/s1").glob("*.pgm"))))
    image = read_image(pgm)
    grey = np.asarray(Image.open(pgm))
    assert image.shape == (*grey.shape, 3)
    for channel in range(3):
        np.testing.assert_array_equal(image[:, :, channel], grey)


def test_16bit_grey_is_scaled_not_clipped(tmp_path: Path) -> None:
    ramp = (np.arange(256, dtype=np.uint16) * 257).reshape(16, 16)
    path = _save(tmp_path / "g16.png", Image.fromarray(ramp), "PNG")
    image = read_image(path)
    np.testing.assert_array_equal(image[:, :, 0], np.arange(256, dtype=np.uint8).reshape(16, 16))


def test_rgba_is_composited_over_white(tmp_path: Path, astronaut: np.ndarray) -> None:
    alpha = np.full(astronaut.shape[:2], 255, dtype=np.uint8)
    alpha[:, :100] = 0  # fully transparent strip
    alpha[:, 100:200] = 128  # half transparent strip
    rgba = np.dstack([astronaut, alpha])
    path = _save(tmp_path / "rgba.png", Image.fromarray(rgba, mode="RGBA"), "PNG")
    image = read_image(path)
    assert image.shape == astronaut.shape
    assert (image[:, :100] == 255).all()
    np.testing.assert_array_equal(image[:, 200:], astronaut[:, 200:])
    expected = (astronaut[:, 100:200].astype(float) * 128 + 255 * 127) / 255
    assert np.abs(image[:, 100:200] - expected).max() <= 1.0


def test_exif_orientation_is_honoured(tmp_path: Path, astronaut: np.ndarray) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = _save(tmp_path / "rot.jpg", Image.fromarray(astronaut[:, :300]), "JPEG", exif=exif, quality=95)
    image = read_image(path)
    assert image.shape == (300, 512, 3)
    upright = np.rot90(astronaut[:, :300], k=-1)
    assert np.abs(image.astype(int) - upright).mean() < 3


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.png: empty file \(0 bytes\)"):
        read_image(path)


def test_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("this is a text file, not a picture\n")
    with pytest.raises(InputError, match=r"notes\.png: not a recognised image file"):
        read_image(path)


@pytest.mark.parametrize(("fmt", "suffix"), [("PNG", ".png"), ("JPEG", ".jpg")])
def test_truncated_file(tmp_path: Path, astronaut: np.ndarray, fmt: str, suffix: str) -> None:
    buffer = io.BytesIO()
    Image.fromarray(astronaut).save(buffer, fmt)
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(InputError, match=rf"cut\{suffix}: truncated or corrupt image"):
        read_image(path)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.png: no such file"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(InputError, match="not a regular file"):
        read_image(tmp_path)


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height but whose pixel data is a few bytes (a bomb's shape)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])  # 8-bit grey
    data = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )
    path.write_bytes(data)
    return path


def test_decompression_bomb_refused_from_header(tmp_path: Path) -> None:
    # Were the pixels decoded, the few data bytes would give "truncated"; the header check answers first.
    path = _png_header_only(tmp_path / "bomb.png", 5000, 4000)
    with pytest.raises(
        InputError, match=r"bomb\.png: image is 5000x4000 = 20,000,000 pixels, over the limit of 1,000,000"
    ):
        read_image(path, max_pixels=1_000_000)
    with pytest.raises(InputError, match=r"bomb\.png: truncated or corrupt image"):
        read_image(path)  # under the default limit it is decoded and found short


def test_decompression_bomb_beyond_pil_limit(tmp_path: Path) -> None:
    path = _png_header_only(tmp_path / "huge.png", 40000, 40000)
    # PIL's own guard (2 x Image.MAX_IMAGE_PIXELS) fires inside Image.open; it is mapped to InputError too.
    with pytest.raises(
        InputError, match=r"huge\.png: image too large, refused before decoding .*1600000000 pixels"
    ):
        read_image(path, max_pixels=10**10)


def test_small_pixel_limit_applies(tmp_path: Path, astronaut: np.ndarray) -> None:
    path = _save(tmp_path / "a.png", Image.fromarray(astronaut), "PNG")
    assert read_image(path, max_pixels=512 * 512).shape == astronaut.shape
    with pytest.raises(InputError, match="over the limit of 262,143"):
        read_image(path, max_pixels=512 * 512 - 1)


def test_unsupported_format(tmp_path: Path, astronaut: np.ndarray) -> None:
    path = _save(tmp_path / "a.gif", Image.fromarray(astronaut).convert("P"), "GIF")
    with pytest.raises(InputError, match=r"a\.gif: unsupported image format GIF"):
        read_image(path)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_write_drops_input_metadata(tmp_path: Path, astronaut: np.ndarray, suffix: str) -> None:
    exif = Image.Exif()
    exif[0x0110] = "Forensic Cam 9000"  # camera model
    exif[0xA431] = "SN-12345678"  # body serial number
    source = _save(tmp_path / "in.jpg", Image.fromarray(astronaut), "JPEG", exif=exif)
    out = write_image(tmp_path / f"out{suffix}", read_image(source))
    raw = out.read_bytes()
    assert b"SN-12345678" not in raw and b"Forensic Cam" not in raw
    with Image.open(out) as img:
        assert not img.getexif()
        assert "icc_profile" not in img.info and "exif" not in img.info and "xmp" not in img.info


def test_write_png_is_lossless_and_reads_back(tmp_path: Path, astronaut: np.ndarray) -> None:
    out = write_image(tmp_path / "x.png", astronaut)
    np.testing.assert_array_equal(read_image(out), astronaut)


def test_png_itxt_round_trip(tmp_path: Path, astronaut: np.ndarray) -> None:
    text = {"ifadit-manifest": '{"version": 1, "faces": [[175, 76, 265, 166]], "note": "ümlaut ✓"}'}
    out = write_image(tmp_path / "m.png", astronaut, extra_png_text=text)
    assert read_png_text(out) == text
    np.testing.assert_array_equal(read_image(out), astronaut)


@pytest.mark.parametrize("size", [0, 1000, 200_000])  # empty, one segment, several 64 kB segments
def test_jpeg_app11_round_trip(tmp_path: Path, astronaut: np.ndarray, size: int) -> None:
    payload = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    out = write_image(tmp_path / "m.jpg", astronaut, jpeg_app11=payload)
    assert read_jpeg_app11(out) == payload
    assert np.abs(read_image(out).astype(int) - astronaut).mean() < 3


def test_jpeg_without_app11(tmp_path: Path, astronaut: np.ndarray) -> None:
    assert read_jpeg_app11(write_image(tmp_path / "plain.jpg", astronaut)) is None


def test_bad_output_format_writes_nothing(tmp_path: Path, astronaut: np.ndarray) -> None:
    with pytest.raises(InputError, match=r"out\.tiff: cannot write format \.tiff"):
        write_image(tmp_path / "out.tiff", astronaut)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_no_partial_file(tmp_path: Path, astronaut: np.ndarray) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"previous content")

    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]  # fails after the temp file exists
    with pytest.raises(ValueError, match="expected an RGB uint8"):
        write_image(target, astronaut.astype(np.float32))
    assert target.read_bytes() == b"previous content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_missing_output_folder(tmp_path: Path, astronaut: np.ndarray) -> None:
    with pytest.raises(InputError, match="does not exist"):
        write_image(tmp_path / "no" / "out.png", astronaut)


def test_written_file_permissions_follow_umask(tmp_path: Path, astronaut: np.ndarray) -> None:
    out = write_image(tmp_path / "p.png", astronaut)
    mask = os.umask(0o022)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask
