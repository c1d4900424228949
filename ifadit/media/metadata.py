"""What `--keep-metadata` carries from an input image into its output: EXIF and ICC, minus what locates or
identifies the camera and the shot.

Some labs must keep capture time, camera model or the colour profile with a released image. Kept: the
ICC profile and the EXIF IFD0 and Exif sub-IFD, with Orientation set to 1 (the pixels are written upright).
Always dropped: the EXIF thumbnail (IFD1, a small copy of the ORIGINAL picture, faces included), XMP and
IPTC. Dropped unless asked: the GPS block (`keep_gps`), and camera and lens serial numbers, the camera
owner's name, the image's unique id and maker notes (vendor blobs that hold serials) (`keep_serial`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from PIL import ExifTags, Image, UnidentifiedImageError

from ifadit.errors import InputError

ORIENTATION = 0x0112
CAMERA_SERIAL = 0xC62F  # IFD0, DNG CameraSerialNumber
SERIAL_TAGS = frozenset(
    {
        0x927C,  # MakerNote
        0xA420,  # ImageUniqueID
        0xA430,  # CameraOwnerName
        0xA431,  # BodySerialNumber
        0xA435,  # LensSerialNumber
    }
)


@dataclass(frozen=True)
class KeptMetadata:
    """EXIF (TIFF bytes, as PIL's `exif=` takes them) and ICC profile to write into an output."""

    exif: bytes | None = None
    icc_profile: bytes | None = None


def kept_metadata(
    path: str | os.PathLike[str], *, keep_gps: bool = False, keep_serial: bool = False
) -> KeptMetadata:
    """The metadata of the image at `path` that `--keep-metadata` keeps (see the module docstring)."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            exif = img.getexif()
            icc = img.info.get("icc_profile") or None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: metadata could not be read ({exc})") from None
    exif.get_ifd(ExifTags.IFD.Exif)  # load the Exif sub-IFD, so that it is written back
    if ORIENTATION in exif:
        exif[ORIENTATION] = 1
    if not keep_gps:
        exif.pop(ExifTags.IFD.GPSInfo, None)
    if not keep_serial:
        exif.pop(CAMERA_SERIAL, None)
        sub = exif.get_ifd(ExifTags.IFD.Exif)
        for tag in SERIAL_TAGS & set(sub):
            del sub[tag]
    # PIL writes IFD0 and its sub-IFDs only, never IFD1: the thumbnail stays behind (a test checks it).
    return KeptMetadata(exif=exif.tobytes() if len(exif) else None, icc_profile=icc)
