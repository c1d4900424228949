"""Safe still-image I/O: bounded decode to RGB uint8, metadata-free atomic encode, manifest byte hooks.

Reading refuses decompression bombs from the header size before any pixel is decoded, honours the EXIF
orientation, turns grey and palette images into RGB and composites transparency over white (what a viewer
shows, so what the detector sees is what a person sees and no pixels hidden under alpha surface in an
output). Every failure is an `InputError` naming the file and the problem.

Writing encodes in memory, then writes a temporary file in the destination folder, fsyncs it and renames
it over the destination: a failure leaves nothing behind. Outputs carry no EXIF, GPS, XMP, ICC profile or
camera serials; the only metadata is what the caller passes: the manifest (PNG iTXt chunks, or JPEG APP11
segments tagged `IFADIT\\0`) and, with `--keep-metadata`, the EXIF and ICC bytes `ifadit.media.metadata`
chose to keep.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from ifadit.errors import InputError
from ifadit.media.files import DEFAULT_MAX_PIXELS, atomic_write_bytes, insert_jpeg_app11

READ_FORMATS = frozenset({"PNG", "JPEG", "WEBP", "PPM", "BMP", "TIFF"})  # PPM covers PGM/PBM
WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
_WHITE = (255, 255, 255)


def check_image(image: np.ndarray) -> None:
    """Raise `ValueError` unless `image` is uint8 HxWx3 (the API boundary format)."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"expected an RGB uint8 HxWx3 image, got {got}")


def read_image(path: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode PNG/JPEG/WebP/PNM/BMP/TIFF (first frame) to RGB uint8 HxWx3, refusing images over `max_pixels`."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file (0 bytes)")
    try:
        with Image.open(path) as img:
            _check_header(path, img, max_pixels)
            with warnings.catch_warnings():
                # Our own limit was checked above; PIL's warning threshold is not the project's.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img.load()
                upright = ImageOps.exif_transpose(img)
            return _to_rgb(upright)
    except InputError:
        raise
    except Image.DecompressionBombError as exc:
        raise InputError(f"{path}: image too large, refused before decoding ({exc})") from None
    except UnidentifiedImageError:
        raise InputError(f"{path}: not a recognised image file") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputError(f"{path}: truncated or corrupt image ({exc})") from None


def _check_header(path: Path, img: Image.Image, max_pixels: int) -> None:
    if img.format not in READ_FORMATS:
        raise InputError(
            f"{path}: unsupported image format {img.format}",
            hint=f"supported: {', '.join(sorted(READ_FORMATS))}",
        )
    width, height = img.size
    if width < 1 or height < 1:
        raise InputError(f"{path}: image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise InputError(
            f"{path}: image is {width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,}",
            hint="raise the pixel limit if this file is trusted",
        )


def _to_rgb(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grey: PIL's convert("L") clips instead of scaling, so scale here.
        wide = np.asarray(img, dtype=np.float64)
        grey = np.clip(np.round(wide / 257.0), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _WHITE + (255,))
        img = Image.alpha_composite(background, rgba)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))


def write_image(
    path: str | os.PathLike[str],
    image: np.ndarray,
    *,
    format: str | None = None,
    extra_png_text: dict[str, str] | None = None,
    jpeg_app11: bytes | None = None,
    quality: int = 95,
    exif: bytes | None = None,
    icc_profile: bytes | None = None,
) -> Path:
    """Write RGB uint8 `image` atomically and metadata-free; `format` defaults from the suffix.

    `quality` applies to JPEG (4:4:4 chroma, no subsampling) and WebP; PNG is lossless.
    `extra_png_text` adds compressed iTXt chunks (PNG only); `jpeg_app11` adds tagged APP11 segments (JPEG only).
    `exif` (TIFF bytes) and `icc_profile` are written as given (`ifadit.media.metadata.kept_metadata`).
    """
    check_image(image)
    path = Path(path)
    fmt = format.upper() if format else WRITE_FORMATS.get(path.suffix.lower())
    if fmt not in set(WRITE_FORMATS.values()):
        raise InputError(
            f"{path}: cannot write format {format or path.suffix or '(no suffix)'}",
            hint="use .png, .jpg or .webp",
        )
    if extra_png_text is not None and fmt != "PNG":
        raise ValueError("extra_png_text needs PNG output")
    if jpeg_app11 is not None and fmt != "JPEG":
        raise ValueError("jpeg_app11 needs JPEG output")
    kept = {name: value for name, value in (("exif", exif), ("icc_profile", icc_profile)) if value}
    data = _encode(image, fmt, extra_png_text, jpeg_app11, quality, kept)
    atomic_write_bytes(path, data)
    return path


def _encode(
    image: np.ndarray,
    fmt: str,
    png_text: dict[str, str] | None,
    app11: bytes | None,
    quality: int,
    kept: dict[str, bytes],
) -> bytes:
    buffer = io.BytesIO()
    pil = Image.fromarray(np.ascontiguousarray(image), mode="RGB")
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        for key, value in (png_text or {}).items():
            info.add_itxt(key, value, zip=True)
        pil.save(buffer, "PNG", pnginfo=info, compress_level=6, **kept)
    elif fmt == "JPEG":
        pil.save(buffer, "JPEG", quality=quality, subsampling=0, **kept)
    else:
        pil.save(buffer, "WEBP", quality=quality, method=4, **kept)
    data = buffer.getvalue()
    return insert_jpeg_app11(data, app11) if app11 is not None else data


def read_png_text(path: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS) -> dict[str, str]:
    """The text chunks (iTXt/tEXt/zTXt) of a PNG, e.g. those written through `extra_png_text`."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            if img.format != "PNG":
                raise InputError(f"{path}: not a PNG file")
            _check_header(path, img, max_pixels)
            img.load()
            chunks: dict[str, Any] = getattr(img, "text", {})
            return {str(key): str(value) for key, value in chunks.items()}
    except InputError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputError(f"{path}: truncated or corrupt PNG ({exc})") from None
