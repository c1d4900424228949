"""ifadit.media.video: round trips (lossless bit-exact, H.264 close), timing, audio copy, metadata, bad input."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from ifadit.errors import IfaditError, InputError
from ifadit.media.video import VideoWriter, probe_video, read_frames, read_timed_frames
from tests.video_scenes import FPS, HEIGHT, WIDTH, Sprite, deepface_patch, face_patch, linear_path, render

FRAMES = 25  # 2.5 s at 10 fps
# irregular (variable frame rate) timestamps in milliseconds: 100 ms steps with a 30 ms wobble
VFR_PTS = [100 * i + 30 * (i % 3 == 1) for i in range(FRAMES)]


@pytest.fixture(scope="module")
def scene(astronaut: np.ndarray, shared_dir: Path) -> list[np.ndarray]:
    """Two real faces moving across a 320x240 canvas."""
    sprites = [
        Sprite(face_patch(astronaut), linear_path((0, 10), (180, 90), FRAMES)),
        Sprite(deepface_patch(shared_dir, "person05/img14.jpg"), linear_path((190, 100), (40, 0), FRAMES)),
    ]
    return render(sprites, FRAMES)


def _write(path: Path, frames: list[np.ndarray], **options: object) -> Path:
    pts = options.pop("pts", None)
    with VideoWriter(path, fps=FPS, **options) as writer:  # type: ignore[arg-type]
        for index, frame in enumerate(frames):
            writer.write(frame, None if pts is None else pts[index])  # type: ignore[index]
    return path


def _with_audio(path: Path, frames: list[np.ndarray], *, metadata: bool = False) -> Path:
    """A source video with an AAC 440 Hz sine track (and optionally creation-time and GPS tags)."""
    rate = 16000
    with av.open(str(path), "w") as container:
        if metadata:
            container.metadata.update(
                {"creation_time": "2021-05-04T10:00:00Z", "location": "+48.8584+002.2945/"}
            )
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        audio = container.add_stream("aac", rate=rate, layout="mono")
        for frame in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        samples = (0.3 * np.sin(2 * np.pi * 440 * np.arange(rate * len(frames) // FPS) / rate)).astype(
            np.float32
        )
        for start in range(0, samples.size, 1024):
            chunk = av.AudioFrame.from_ndarray(
                samples[None, start : start + 1024], format="fltp", layout="mono"
            )
            chunk.sample_rate, chunk.pts = rate, start
            for packet in audio.encode(chunk):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
    return path


def _audio_packets(path: Path) -> list[tuple[float, bytes]]:
    with av.open(str(path)) as container:
        return [
            (float(packet.pts * packet.time_base), bytes(packet))
            for packet in container.demux(container.streams.audio[0])
            if packet.size and packet.pts is not None and packet.time_base is not None
        ]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --- round trips ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "codec"), [("out.mkv", "ffv1"), ("frames", "png")])
def test_lossless_round_trip_is_bit_exact_with_timestamps(
    tmp_path: Path, scene: list[np.ndarray], name: str, codec: str
) -> None:
    path = _write(tmp_path / name, scene, codec=codec, time_base=Fraction(1, 1000), pts=VFR_PTS)
    decoded = list(read_timed_frames(path))
    assert len(decoded) == FRAMES
    for original, frame in zip(scene, decoded, strict=True):
        assert frame.image.dtype == np.uint8 and np.array_equal(frame.image, original)
    assert [frame.time for frame in decoded] == [Fraction(p, 1000) for p in VFR_PTS]


def test_png_sequence_probe_and_folders_from_elsewhere(tmp_path: Path, scene: list[np.ndarray]) -> None:
    from PIL import Image

    written = _write(tmp_path / "frames", scene[:4], codec="png", time_base=Fraction(1, 1000), pts=VFR_PTS)
    info = probe_video(written)
    assert (info.frames, info.fps, info.size, info.codec, info.has_audio) == (
        4,
        10,
        (WIDTH, HEIGHT),
        "png",
        False,
    )
    assert info.time_base == Fraction(1, 1000)
    exported = tmp_path / "exported"  # e.g. a CCTV export: numbered PNGs, no timing file
    exported.mkdir()
    for index, frame in enumerate(scene[:3]):
        Image.fromarray(frame).save(exported / f"img{index:03d}.png")
    assert probe_video(exported).fps == 25
    assert [f.time for f in read_timed_frames(exported)] == [Fraction(0), Fraction(1, 25), Fraction(2, 25)]


def test_png_sequence_bad_input(tmp_path: Path, scene: list[np.ndarray]) -> None:
    from PIL import Image

    folder = _write(tmp_path / "frames", scene[:3], codec="png")
    (folder / "timestamps.json").write_text('{"time_base": "1/10", "fps": "10", "pts": [0, 1]}')
    _expect_input_error(folder / "timestamps.json", "lists 2 timestamps for 3 PNG frames", folder)
    (folder / "timestamps.json").write_text("{not json")
    _expect_input_error(folder / "timestamps.json", "malformed timestamps file", folder)
    (folder / "timestamps.json").unlink()
    Image.fromarray(scene[0][:100]).save(folder / "000001.png")
    with pytest.raises(InputError, match="000001.png: frame size 320x100 differs"):
        list(read_frames(folder))
    (folder / "000001.png").write_bytes(b"garbage")
    with pytest.raises(InputError, match="000001.png: not a readable PNG frame"):
        list(read_frames(folder))
    empty = tmp_path / "empty"
    empty.mkdir()
    _expect_input_error(empty, "folder holds no PNG frames")


def test_probe_reports_frames_rate_size_codec(tmp_path: Path, scene: list[np.ndarray]) -> None:
    info = probe_video(_write(tmp_path / "out.mkv", scene, codec="ffv1"))
    assert (info.frames, info.fps, info.size, info.codec, info.has_audio) == (
        FRAMES,
        10,
        (WIDTH, HEIGHT),
        "ffv1",
        False,
    )
    assert isinstance(info.fps, Fraction)


@pytest.mark.parametrize("name", ["out.mp4", "out.mkv", "out.mov"])
def test_h264_is_close_and_keeps_variable_timestamps(
    tmp_path: Path, scene: list[np.ndarray], name: str
) -> None:
    path = _write(tmp_path / name, scene, time_base=Fraction(1, 1000), pts=VFR_PTS)
    info = probe_video(path)
    assert (info.codec, info.frames, info.size) == ("h264", FRAMES, (WIDTH, HEIGHT))
    decoded = list(read_timed_frames(path))
    errors = [np.mean((f.image.astype(float) - o) ** 2) for f, o in zip(decoded, scene, strict=True)]
    assert 10 * np.log10(255**2 / max(errors)) > 35  # PSNR in dB of the worst frame
    assert [frame.time for frame in decoded] == [Fraction(p, 1000) for p in VFR_PTS]


def test_h264_accepts_odd_frame_sizes(tmp_path: Path, scene: list[np.ndarray]) -> None:
    odd = [frame[:239, :317] for frame in scene[:5]]
    decoded = list(read_frames(_write(tmp_path / "odd.mp4", odd)))
    assert [frame.shape for frame in decoded] == [(239, 317, 3)] * 5


@pytest.mark.parametrize(("degrees", "turns"), [(90, 1), (-90, 3), (180, 2)])
def test_frames_flagged_as_rotated_are_read_upright(
    tmp_path: Path, scene: list[np.ndarray], degrees: int, turns: int
) -> None:
    """Phones store sideways frames plus a display rotation; faces must reach the detector upright."""
    path = tmp_path / "phone.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS, options={"qp": "0"})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv444p"
        stream.set_display_rotation(degrees)
        for frame in scene[:3]:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    info = probe_video(path)
    assert info.rotation == degrees % 360
    assert info.size == ((HEIGHT, WIDTH) if turns % 2 else (WIDTH, HEIGHT))
    for stored, upright in zip(scene[:3], read_frames(path), strict=True):
        assert upright.shape == (info.height, info.width, 3)
        assert (
            np.abs(upright.astype(int) - np.rot90(stored, turns)).mean() < 2
        )  # lossless H.264, RGB->YUV rounding


def test_output_file_follows_the_umask(tmp_path: Path, scene: list[np.ndarray]) -> None:
    mask = os.umask(0o022)
    os.umask(mask)
    path = _write(tmp_path / "out.mp4", scene[:3])
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


# --- audio and metadata ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["out.mp4", "out.mkv"])
def test_keep_audio_copies_packets_unchanged(tmp_path: Path, scene: list[np.ndarray], name: str) -> None:
    source = _with_audio(tmp_path / "source.mp4", scene)
    frames = [t for t in read_timed_frames(source)]
    info = probe_video(source)
    out = tmp_path / name
    with VideoWriter(
        out,
        fps=info.fps,
        codec="ffv1" if name.endswith("mkv") else "h264",
        time_base=info.time_base,
        audio_from=source,
    ) as writer:
        for frame in frames:
            writer.write(frame.image, frame.pts)
    assert probe_video(out).has_audio
    copied, original = _audio_packets(out), _audio_packets(source)
    assert [data for _, data in copied] == [data for _, data in original]  # bit-identical: no re-encoding
    np.testing.assert_allclose([t for t, _ in copied], [t for t, _ in original], atol=1e-3)
    assert [f.time for f in read_timed_frames(out)] == [f.time for f in frames]


def test_without_keep_audio_the_output_is_silent(tmp_path: Path, scene: list[np.ndarray]) -> None:
    source = _with_audio(tmp_path / "source.mp4", scene)
    assert not probe_video(_write(tmp_path / "out.mp4", list(read_frames(source)))).has_audio


def test_input_metadata_is_dropped(tmp_path: Path, scene: list[np.ndarray]) -> None:
    source = _with_audio(tmp_path / "source.mp4", scene[:5], metadata=True)
    with av.open(str(source)) as container:
        assert "location" in container.metadata and "creation_time" in container.metadata
    for name, codec in (("out.mp4", "h264"), ("out.mkv", "ffv1")):
        out = tmp_path / name
        with VideoWriter(out, fps=FPS, codec=codec, audio_from=source) as writer:  # type: ignore[arg-type]
            for frame in read_frames(source):
                writer.write(frame)
        with av.open(str(out)) as container:
            tags = [container.metadata] + [stream.metadata for stream in container.streams]
        text = repr(tags).lower()
        assert "creation_time" not in text and "location" not in text and "48.8584" not in text


def test_png_sequence_cannot_keep_audio(tmp_path: Path, scene: list[np.ndarray]) -> None:
    with pytest.raises(ValueError, match="cannot carry audio"):
        VideoWriter(tmp_path / "frames", fps=FPS, codec="png", audio_from=tmp_path / "a.mp4")


# --- bad input ------------------------------------------------------------------------------------------


@pytest.fixture()
def good_mkv(tmp_path: Path, scene: list[np.ndarray]) -> Path:
    return _write(tmp_path / "good.mkv", scene, codec="ffv1")


@pytest.fixture()
def good_mp4(tmp_path: Path, scene: list[np.ndarray]) -> Path:
    return _write(tmp_path / "good.mp4", scene)


def _expect_input_error(path: Path, match: str, source: Path | None = None) -> None:
    """Both probing and reading `source` (default `path`) fail with an error naming `path`."""
    for reader in (probe_video, lambda p: list(read_frames(p))):
        with pytest.raises(InputError, match=match) as caught:
            reader(source or path)
        assert str(path) in str(caught.value)


def test_zero_byte_file(tmp_path: Path) -> None:
    (path := tmp_path / "empty.mp4").write_bytes(b"")
    _expect_input_error(path, "empty file")


def test_garbage_bytes(tmp_path: Path) -> None:
    (path := tmp_path / "noise.mp4").write_bytes(np.random.default_rng(0).bytes(20_000))
    _expect_input_error(path, "not a readable video")


def test_missing_file(tmp_path: Path) -> None:
    _expect_input_error(tmp_path / "absent.mp4", "no such video")


def test_truncated_mp4_with_index_at_the_front_is_caught_while_decoding(
    tmp_path: Path, good_mp4: Path
) -> None:
    data = good_mp4.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # the writer's faststart layout
    (path := tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    assert probe_video(path).frames == FRAMES  # the header still promises every frame
    with pytest.raises(InputError, match=rf"truncated video: decoded \d+ of {FRAMES} frames") as caught:
        list(read_frames(path))
    assert str(path) in str(caught.value)


def test_truncated_mp4_with_index_at_the_end(tmp_path: Path, scene: list[np.ndarray]) -> None:
    path = tmp_path / "camera.mp4"
    with av.open(str(path), "w") as container:  # FFmpeg's default layout: moov written last
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for frame in scene:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 9 // 10])
    _expect_input_error(path, "not a readable video, or truncated")


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_mkv_is_caught_while_decoding(tmp_path: Path, good_mkv: Path, keep: float) -> None:
    data = good_mkv.read_bytes()
    (path := tmp_path / "cut.mkv").write_bytes(data[: int(len(data) * keep)])
    frames = read_frames(path)
    with pytest.raises(
        InputError, match=r"truncated video: frames end at .* s of 2\.50 s declared"
    ) as caught:
        list(frames)
    assert str(path) in str(caught.value)


def test_corrupted_frame_data(tmp_path: Path, good_mkv: Path) -> None:
    data = bytearray(good_mkv.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4000] = np.random.default_rng(1).bytes(4000)
    (path := tmp_path / "damaged.mkv").write_bytes(bytes(data))
    with pytest.raises(InputError, match="corrupted video after frame") as caught:
        list(read_frames(path))
    assert str(path) in str(caught.value)


def test_unsupported_codec(tmp_path: Path, good_mkv: Path) -> None:
    # Same-length rename of the Matroska codec id: a codec this FFmpeg (or any) does not know.
    (path := tmp_path / "alien.mkv").write_bytes(good_mkv.read_bytes().replace(b"V_FFV1", b"V_QQQQ"))
    _expect_input_error(path, "video codec is not supported")


def test_still_image_is_not_a_video(tmp_path: Path, astronaut: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(astronaut).save(path := tmp_path / "photo.jpg")
    _expect_input_error(path, "still image")


def test_audio_only_file(tmp_path: Path) -> None:
    path = tmp_path / "voice.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("flac", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    _expect_input_error(path, "no video stream")


# --- atomic writing -------------------------------------------------------------------------------------


class _Boom(Exception):
    pass


@pytest.mark.parametrize(
    ("name", "codec", "error"),
    [
        ("out.mp4", "h264", _Boom),
        ("out.mkv", "ffv1", _Boom),
        ("frames", "png", _Boom),
        ("out.mp4", "h264", KeyboardInterrupt),
    ],
)
def test_exception_while_writing_leaves_nothing(
    tmp_path: Path, scene: list[np.ndarray], name: str, codec: str, error: type[BaseException]
) -> None:
    with pytest.raises(error), VideoWriter(tmp_path / name, fps=FPS, codec=codec) as writer:  # type: ignore[arg-type]
        for index, frame in enumerate(scene):
            writer.write(frame)
            if index == 10:
                raise error()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_failure_keeps_an_existing_output_intact(tmp_path: Path, scene: list[np.ndarray]) -> None:
    path = _write(tmp_path / "out.mp4", scene[:3])
    before = path.read_bytes()
    with (
        pytest.raises(ValueError, match="differs from the first frame"),
        VideoWriter(path, fps=FPS) as writer,
    ):
        writer.write(scene[0])
        writer.write(scene[1][:100])
    assert path.read_bytes() == before and _leftovers(tmp_path) == []


def test_writing_no_frames_is_an_error_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no frames"), VideoWriter(tmp_path / "out.mp4", fps=FPS):
        pass
    assert list(tmp_path.iterdir()) == []


def test_png_sequence_refuses_an_existing_folder(tmp_path: Path, scene: list[np.ndarray]) -> None:
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "mine.txt").write_text("keep me")
    with pytest.raises(IfaditError, match="already exists"):
        _write(tmp_path / "frames", scene[:2], codec="png")
    assert [p.name for p in (tmp_path / "frames").iterdir()] == ["mine.txt"] and _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("name", "codec", "match"),
    [
        ("out.avi", "h264", "writes .mp4"),
        ("out.mp4", "ffv1", "writes .mkv"),
        ("out.png", "png", "folder"),
        ("out.mkv", "vp9", "codec must be"),
    ],
)
def test_rejects_codec_and_suffix_mismatch(tmp_path: Path, name: str, codec: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        VideoWriter(tmp_path / name, fps=FPS, codec=codec)  # type: ignore[arg-type]


def test_rejects_timestamps_that_do_not_increase(tmp_path: Path, scene: list[np.ndarray]) -> None:
    with (
        pytest.raises(ValueError, match="timestamps must increase"),
        VideoWriter(tmp_path / "out.mkv", fps=FPS, codec="ffv1") as writer,
    ):
        writer.write(scene[0], 5)
        writer.write(scene[1], 5)
    assert list(tmp_path.iterdir()) == []


def test_missing_output_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"), VideoWriter(tmp_path / "no" / "out.mp4", fps=FPS):
        pass
