"""deface parity of `ifadit anonymize` (issue 26 item 5) on real photos and real PyAV video:
--replacewith solid/none/img, --boxes, --keep-metadata (with --keep-gps/--keep-serial), --crf and
--ffmpeg-config."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image

from ifadit.media.image import read_image, write_image
from ifadit.media.manifest import read_manifest
from ifadit.media.video import VideoWriter
from ifadit.pipeline.anonymize import BOX_COLOUR
from tests.pipeline.support import CASE, Lab, make_lab
from tests.video_scenes import FPS, Sprite, deepface_patch, linear_path, render

FACE = (175, 76, 265, 166)  # where the astronaut's face is (x0, y0, x1, y1)


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return make_lab(tmp_path)


@pytest.fixture
def photo(tmp_path: Path, astronaut: np.ndarray) -> Path:
    write_image(tmp_path / "astronaut.png", astronaut)
    return tmp_path / "astronaut.png"


def _run(lab: Lab, *args: str | Path) -> tuple[int, str]:
    done = lab.cli("anonymize", *args, "--case", CASE)
    return done.exit_code, done.stdout + done.stderr


def test_solid_is_a_filled_face(lab: Lab, tmp_path: Path, photo: Path) -> None:
    code, text = _run(lab, photo, "-o", tmp_path / "out.png", "--replacewith", "solid")
    assert code == 0, text
    manifest = read_manifest(tmp_path / "out.png")
    assert manifest is not None and manifest.backend == "mask"
    x0, y0, x1, y1 = FACE
    centre = read_image(tmp_path / "out.png")[(y0 + y1) // 2 - 5 : (y0 + y1) // 2 + 5, (x0 + x1) // 2]
    assert (centre == 0).all()


def test_none_with_boxes_leaves_faces_and_marks_them(
    lab: Lab, tmp_path: Path, photo: Path, astronaut: np.ndarray
) -> None:
    code, text = _run(lab, photo, "-o", tmp_path / "out.png", "--replacewith", "none", "--boxes")
    assert code == 0, text
    out = read_image(tmp_path / "out.png")
    manifest = read_manifest(tmp_path / "out.png")
    assert manifest is not None and manifest.backend == "none" and len(manifest.faces) == 1
    x0, y0, x1, y1 = manifest.faces[0].box
    changed = (out != astronaut).any(axis=2)
    assert changed.any() and (out[changed] == BOX_COLOUR).all()  # only the green outline was drawn
    assert not changed[y0 + 4 : y1 - 4, x0 + 4 : x1 - 4].any()  # the face inside is untouched
    assert changed[y0, x0:x1].all() and changed[y0:y1, x0].all()


def test_img_covers_the_face_with_a_picture(lab: Lab, tmp_path: Path, photo: Path) -> None:
    write_image(tmp_path / "cover.png", np.full((40, 30, 3), (200, 30, 90), np.uint8))
    code, text = _run(
        lab, photo, "-o", tmp_path / "out.png", "--replacewith", "img", "--replaceimg", tmp_path / "cover.png"
    )
    assert code == 0, text
    x0, y0, x1, y1 = FACE
    centre = read_image(tmp_path / "out.png")[(y0 + y1) // 2, (x0 + x1) // 2]
    assert np.abs(centre.astype(int) - (200, 30, 90)).max() <= 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--backend", "blur", "--replacewith", "solid"), "disagree"),
        (("--replacewith", "img"), "--replacewith img needs --replaceimg"),
        (("--keep-gps",), "--keep-gps and --keep-serial go with --keep-metadata"),
        (("--boxes", "--seal-original"), "--boxes draws outside the sealed face regions"),
        (("--crf", "20", "--lossless"), "crf applies to H.264 video"),
        (("--ffmpeg-config", "[1]"), "expected a JSON object"),
    ],
)
def test_clashing_options_are_usage_errors(
    lab: Lab, tmp_path: Path, photo: Path, args: tuple[str, ...], message: str
) -> None:
    code, text = _run(lab, photo, "-o", tmp_path / "out.png", *args)
    assert code == 2 and message in text
    assert not (tmp_path / "out.png").exists()


def _tagged_jpeg(path: Path, image: np.ndarray) -> None:
    """`image` as a JPEG with camera make, capture time, a serial number, GPS and an ICC profile."""
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif.get_ifd(ExifTags.IFD.Exif)[0x9003] = "2024:01:01 10:00:00"
    exif.get_ifd(ExifTags.IFD.Exif)[0xA431] = "SN-0042"
    exif.get_ifd(ExifTags.IFD.GPSInfo)[1] = "N"
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=95, exif=exif.tobytes(), icc_profile=b"test-icc")
    path.write_bytes(buffer.getvalue())


def _metadata(path: Path) -> tuple[dict[int, object], dict[int, object], dict[int, object], bytes | None]:
    with Image.open(path) as img:
        exif = img.getexif()
        return (
            dict(exif),
            dict(exif.get_ifd(ExifTags.IFD.Exif)),
            dict(exif.get_ifd(ExifTags.IFD.GPSInfo)),
            img.info.get("icc_profile"),
        )


def test_metadata_is_dropped_unless_kept_and_gps_serials_need_asking(
    lab: Lab, tmp_path: Path, astronaut: np.ndarray
) -> None:
    _tagged_jpeg(tmp_path / "tagged.jpg", astronaut)
    assert _run(lab, tmp_path / "tagged.jpg", "-o", tmp_path / "plain.jpg")[0] == 0
    assert _metadata(tmp_path / "plain.jpg") == ({}, {}, {}, None)
    assert _run(lab, tmp_path / "tagged.jpg", "-o", tmp_path / "kept.jpg", "--keep-metadata")[0] == 0
    ifd0, sub, gps, icc = _metadata(tmp_path / "kept.jpg")
    assert ifd0[0x010F] == "Canon" and sub == {0x9003: "2024:01:01 10:00:00"} and gps == {}
    assert icc == b"test-icc" and read_manifest(tmp_path / "kept.jpg") is not None
    code, _ = _run(
        lab,
        tmp_path / "tagged.jpg",
        "-o",
        tmp_path / "all.jpg",
        "--keep-metadata",
        "--keep-gps",
        "--keep-serial",
    )
    assert code == 0
    _, sub, gps, _ = _metadata(tmp_path / "all.jpg")
    assert sub[0xA431] == "SN-0042" and gps[1] == "N"


def test_a_camera_photo_keeps_no_thumbnail_of_the_original(
    lab: Lab, tmp_path: Path, shared_dir: Path
) -> None:
    source = (
        shared_dir / "data" / "reid" / "deepface" / "person01" / "img26.jpg"
    )  # EXIF with GPS, thumbnail, ICC
    with Image.open(source) as img:
        assert img.getexif().get_ifd(ExifTags.IFD.IFD1)  # the original carries a thumbnail
    assert _run(lab, source, "-o", tmp_path / "out.jpg", "--keep-metadata")[0] == 0
    with Image.open(tmp_path / "out.jpg") as img:
        exif = img.getexif()
        assert len(exif) and not exif.get_ifd(ExifTags.IFD.IFD1) and not exif.get_ifd(ExifTags.IFD.GPSInfo)
        assert exif.get(0x0112, 1) == 1  # pixels are upright: orientation reset
    assert read_image(tmp_path / "out.jpg").shape == read_image(source).shape


@pytest.fixture
def clip(tmp_path: Path, shared_dir: Path) -> Path:
    sprites = [Sprite(deepface_patch(shared_dir, "person03/img3.jpg"), linear_path((20, 20), (60, 40), 6))]
    with VideoWriter(tmp_path / "clip.mp4", fps=FPS) as writer:
        for frame in render(sprites, 6):
            writer.write(frame)
    return tmp_path / "clip.mp4"


def test_crf_and_encoder_options_set_video_quality(lab: Lab, tmp_path: Path, clip: Path) -> None:
    sizes = {}
    for crf in ("4", "40"):
        out = tmp_path / f"crf{crf}.mp4"
        code, text = _run(lab, clip, "-o", out, "--crf", crf, "--ffmpeg-config", '{"preset": "ultrafast"}')
        assert code == 0, text
        sizes[crf] = out.stat().st_size
    assert sizes["40"] < sizes["4"] / 2
    code, text = _run(
        lab, clip, "-o", tmp_path / "bad.mp4", "--ffmpeg-config", '{"preset": "no-such-preset"}'
    )
    assert code == 1 and "the h264 encoder refused its options" in text
    assert not (tmp_path / "bad.mp4").exists()
