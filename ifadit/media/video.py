"""Video I/O through PyAV: probe, decode to RGB frames with their timestamps, and write atomically.

Writing goes to a hidden temporary file (or folder) beside the target and is renamed only when every
frame and audio packet is in: an exception or Ctrl-C leaves no output under the target name. Outputs
carry no input metadata (creation time, location, device tags): only frames, timestamps and, with
`audio_from`, the input's audio packets copied unchanged.

Codecs (PyAV's bundled FFmpeg): "h264" = libx264 (lossy, for sharing; .mp4/.mov/.mkv), "ffv1" = FFV1
with bgr0 pixels in .mkv (lossless: decoding gives back the exact RGB frames), "png" = a folder of
PNG frames plus `timestamps.json` (lossless, one file per frame). `VideoWriter(encoder_options=...)` passes
FFmpeg options to the encoder (e.g. {"preset": "slow", "tune": "film"}); FFmpeg ignores names its encoder
does not know, and a value it refuses is an `InputError` at the first frame.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import av
import av.container
import numpy as np
from PIL import Image

from ifadit.errors import IfaditError, InputError

VideoCodec = Literal["h264", "ffv1", "png"]

MAX_FRAME_PIXELS = 8192 * 8192  # larger frames are refused as decompression bombs
TIMESTAMPS_FILE = "timestamps.json"  # timing of a PNG-sequence folder
DEFAULT_CRF = 18  # libx264's constant rate factor for "h264" (visually transparent)
SEQUENCE_FPS = Fraction(25)  # frame rate assumed for a PNG folder without a timestamps file
_CONTAINER_FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}
_CODEC_SUFFIXES: dict[str, tuple[str, ...]] = {
    "h264": (".mp4", ".mov", ".mkv"),
    "ffv1": (".mkv",),
    "png": ("",),
}


@dataclass(frozen=True)
class VideoInfo:
    """What `probe_video` reads from a file's headers (and, when the header has no count, its packets)."""

    path: Path
    frames: int  # video frames in the file
    fps: Fraction  # average frame rate
    width: int  # of the frames as `read_frames` yields them (upright: display rotation applied)
    height: int
    time_base: Fraction  # unit of the frame timestamps (`TimedFrame.pts`)
    codec: str  # FFmpeg decoder name, e.g. "h264", "ffv1"
    has_audio: bool
    rotation: int = 0  # display rotation in the file, degrees counter-clockwise; frames are read upright

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.width, self.height


@dataclass(frozen=True)
class TimedFrame:
    """One decoded frame: RGB uint8 HxWx3 and its presentation timestamp in units of `time_base`."""

    image: np.ndarray
    pts: int
    time_base: Fraction

    @property
    def time(self) -> Fraction:
        """Presentation time in seconds."""
        return self.pts * self.time_base


def _open_input(path: Path) -> av.container.InputContainer:
    if not path.is_file():
        raise InputError(f"{path}: no such video file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file (0 bytes), not a video")
    try:
        return av.open(str(path), mode="r")
    except av.FFmpegError as exc:
        raise InputError(f"{path}: not a readable video, or truncated ({_reason(exc)})") from None


def _reason(exc: av.FFmpegError) -> str:
    return exc.strerror or type(exc).__name__


def _video_stream(container: av.container.InputContainer, path: Path) -> av.VideoStream:
    if container.format.name == "image2" or container.format.name.endswith("_pipe"):
        raise InputError(f"{path}: is a still image, not a video")
    if not container.streams.video:
        raise InputError(f"{path}: contains no video stream")
    stream = container.streams.video[0]
    ctx = stream.codec_context
    if ctx is None or ctx.codec is None or ctx.name in ("", "none"):
        raise InputError(f"{path}: video codec is not supported by this build of FFmpeg")
    if stream.width <= 0 or stream.height <= 0:
        raise InputError(f"{path}: video stream has no frame size (corrupted header)")
    if stream.width * stream.height > MAX_FRAME_PIXELS:
        raise InputError(
            f"{path}: frames of {stream.width}x{stream.height} exceed the limit of {MAX_FRAME_PIXELS} pixels"
        )
    return stream


def _stream_end(stream: av.VideoStream) -> Fraction | None:
    """Declared end time of the video stream in seconds, from the header (None when not declared)."""
    if stream.duration is not None and stream.time_base is not None:
        return Fraction(stream.start_time or 0) * stream.time_base + stream.duration * stream.time_base
    tag = stream.metadata.get("DURATION", "")  # Matroska writes it per stream, "HH:MM:SS.nnnnnnnnn"
    try:
        hours, minutes, seconds = tag.split(":")
        return Fraction(int(hours) * 3600 + int(minutes) * 60) + Fraction(seconds)
    except ValueError:  # absent or not in that form: no declared end to check against
        return None


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Read a video's frame count, rate, upright size, codec, rotation and audio; `InputError` if unreadable.

    A folder written with codec "png" is probed too (codec "png", no audio).
    """
    path = Path(path)
    if path.is_dir():
        return _probe_png_sequence(path)
    with _open_input(path) as container:
        stream = _video_stream(container, path)
        fps = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not fps:
            raise InputError(f"{path}: video stream declares no frame rate (corrupted header)")
        frames = stream.frames
        if frames <= 0:
            try:
                frames = sum(1 for packet in container.demux(stream) if packet.size > 0)
            except av.FFmpegError as exc:
                raise InputError(f"{path}: corrupted video ({_reason(exc)})") from None
        width, height, codec = stream.width, stream.height, stream.codec_context.name
        time_base = Fraction(stream.time_base or Fraction(1, 1) / Fraction(fps))
        has_audio = bool(container.streams.audio)
    rotation = _rotation(path)
    if rotation % 180:
        width, height = height, width
    return VideoInfo(path, frames, Fraction(fps), width, height, time_base, codec, has_audio, rotation)


def _rotation(path: Path) -> int:
    """Display rotation of the first frame (phones record sideways and flag it), degrees counter-clockwise."""
    with _open_input(path) as container:
        try:
            frame = next(container.decode(_video_stream(container, path)), None)
        except av.FFmpegError as exc:
            raise InputError(f"{path}: corrupted video ({_reason(exc)})") from None
        if frame is None:
            raise InputError(f"{path}: no decodable video frame (corrupted or truncated file)")
        return int(round(frame.rotation / 90)) * 90 % 360


def _upright(frame: av.VideoFrame) -> np.ndarray:
    image = frame.to_ndarray(format="rgb24")
    turns = int(round(frame.rotation / 90)) % 4
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


def read_timed_frames(path: str | os.PathLike[str]) -> Iterator[TimedFrame]:
    """Decode every video frame as RGB uint8 with its timestamp, in presentation order.

    A folder written with codec "png" is read back too. Raises `InputError` naming the file when it is
    not a video, uses an unsupported codec, is corrupted, or ends before its header says it should.
    """
    path = Path(path)
    if path.is_dir():
        yield from _read_png_sequence(path)
        return
    with _open_input(path) as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"  # frame and slice threads: ~1.5x faster H.264 decoding on 2 cores
        time_base = Fraction(stream.time_base or Fraction(1, 1000))
        step = max(1, round(1 / (Fraction(stream.average_rate or stream.guessed_rate or 25) * time_base)))
        declared_frames, declared_end = stream.frames, _stream_end(stream)
        decoded, end_pts = 0, 0
        try:
            for frame in container.decode(stream):
                pts = frame.pts if frame.pts is not None else end_pts
                yield TimedFrame(_upright(frame), pts, time_base)
                decoded, end_pts = decoded + 1, pts + (frame.duration or step)
        except av.FFmpegError as exc:
            raise InputError(f"{path}: corrupted video after frame {decoded} ({_reason(exc)})") from None
        if decoded == 0:
            raise InputError(f"{path}: no decodable video frame (corrupted or truncated file)")
        if declared_frames > 0 and decoded < declared_frames:
            raise InputError(f"{path}: truncated video: decoded {decoded} of {declared_frames} frames")
        if declared_end is not None:
            decoded_end = end_pts * time_base
            if decoded_end + Fraction(step, 2) * time_base < declared_end:
                raise InputError(
                    f"{path}: truncated video: frames end at {float(decoded_end):.2f} s "
                    f"of {float(declared_end):.2f} s declared"
                )


def read_frames(path: str | os.PathLike[str]) -> Iterator[np.ndarray]:
    """Decode every video frame as RGB uint8 HxWx3; errors as in `read_timed_frames`."""
    for frame in read_timed_frames(path):
        yield frame.image


@dataclass(frozen=True)
class _Sequence:
    files: list[Path]  # frames in name order
    pts: list[int]
    time_base: Fraction
    fps: Fraction


def _png_sequence(folder: Path) -> _Sequence:
    """A PNG-sequence folder's frames and timing (from `timestamps.json`, else SEQUENCE_FPS)."""
    files = sorted(p for p in folder.iterdir() if p.suffix == ".png")
    if not files:
        raise InputError(f"{folder}: folder holds no PNG frames")
    timing_file = folder / TIMESTAMPS_FILE
    if not timing_file.is_file():
        return _Sequence(files, list(range(len(files))), 1 / SEQUENCE_FPS, SEQUENCE_FPS)
    try:
        timing = json.loads(timing_file.read_text())
        sequence = _Sequence(
            files, [int(p) for p in timing["pts"]], Fraction(timing["time_base"]), Fraction(timing["fps"])
        )
    except (ValueError, KeyError, TypeError, ZeroDivisionError) as exc:
        raise InputError(f"{timing_file}: malformed timestamps file ({exc!r})") from None
    if len(sequence.pts) != len(files):
        raise InputError(f"{timing_file}: lists {len(sequence.pts)} timestamps for {len(files)} PNG frames")
    return sequence


def _open_png(file: Path) -> Image.Image:
    try:
        img = Image.open(file)
    except (OSError, SyntaxError) as exc:
        raise InputError(f"{file}: not a readable PNG frame ({exc})") from None
    if img.width * img.height > MAX_FRAME_PIXELS:
        img.close()
        raise InputError(f"{file}: frame exceeds the limit of {MAX_FRAME_PIXELS} pixels")
    return img


def _probe_png_sequence(folder: Path) -> VideoInfo:
    sequence = _png_sequence(folder)
    with _open_png(sequence.files[0]) as img:
        width, height = img.size
    return VideoInfo(
        folder, len(sequence.files), sequence.fps, width, height, sequence.time_base, "png", False
    )


def _read_png_sequence(folder: Path) -> Iterator[TimedFrame]:
    sequence = _png_sequence(folder)
    first_shape: tuple[int, ...] | None = None
    for file, pts in zip(sequence.files, sequence.pts, strict=True):
        with _open_png(file) as img:
            try:
                image = np.asarray(img.convert("RGB"))
            except (OSError, SyntaxError) as exc:
                raise InputError(f"{file}: not a readable PNG frame ({exc})") from None
        if image.shape != first_shape and first_shape is not None:
            raise InputError(
                f"{file}: frame size {image.shape[1]}x{image.shape[0]} differs from the first frame's"
            )
        first_shape = image.shape
        yield TimedFrame(image, pts, sequence.time_base)


class VideoWriter:
    """Context manager writing RGB frames to a video atomically.

    `fps` is the nominal rate; `time_base` (default 1/fps) is the unit of the `pts` given to `write`, so
    passing a source's `VideoInfo.time_base` and each `TimedFrame.pts` keeps the source timing exactly.
    `audio_from` copies that file's audio streams packet for packet (no re-encoding).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fps: Fraction | int,
        codec: VideoCodec = "h264",
        time_base: Fraction | None = None,
        audio_from: str | os.PathLike[str] | None = None,
        crf: int = DEFAULT_CRF,  # libx264 quality: 0 best (lossless yuv), 18 visually transparent, 51 worst
        encoder_options: Mapping[str, str] | None = None,  # FFmpeg options of the encoder, over the defaults
    ) -> None:
        self.path = Path(path)
        suffixes = _CODEC_SUFFIXES.get(codec)
        if suffixes is None:
            raise ValueError(f"codec must be one of {sorted(_CODEC_SUFFIXES)}, not {codec!r}")
        if self.path.suffix.lower() not in suffixes:
            wanted = "a folder path without suffix" if codec == "png" else " or ".join(suffixes)
            raise ValueError(f"codec {codec!r} writes {wanted}; got {self.path.name!r}")
        if codec == "png" and audio_from is not None:
            raise ValueError("a PNG sequence cannot carry audio: write .mkv or .mp4 to keep audio")
        self.codec = codec
        self.fps = Fraction(fps)
        self.time_base = Fraction(time_base) if time_base is not None else 1 / self.fps
        self.audio_from = Path(audio_from) if audio_from is not None else None
        self.crf = crf
        self.encoder_options = dict(encoder_options or {})
        self._tmp: Path | None = None
        self._container: av.container.OutputContainer | None = None
        self._stream: av.VideoStream | None = None
        self._audio: _AudioCopy | None = None
        self._size: tuple[int, int] | None = None
        self._pts: list[int] = []

    def __enter__(self) -> VideoWriter:
        parent = self.path.parent
        if not parent.is_dir():
            raise InputError(f"{self.path}: output folder {parent} does not exist")
        # Hidden name beside the target; created with the default mode so the umask applies as for any file.
        tmp = parent / f".{self.path.name}.{secrets.token_hex(6)}.part"
        if self.codec == "png":
            tmp.mkdir()
            self._tmp = tmp
            return self
        os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        self._tmp = tmp
        try:
            fmt = _CONTAINER_FORMATS[self.path.suffix.lower()]
            # Matroska would otherwise shift every timestamp when copied audio starts below zero (AAC priming)
            # MP4/MOV: index (moov) at the front, so players and browsers start before the whole file is in
            options = {"avoid_negative_ts": "disabled"} if fmt == "matroska" else {"movflags": "+faststart"}
            self._container = av.open(str(self._tmp), mode="w", format=fmt, options=options)
        except BaseException:
            self._discard()
            raise
        return self

    def write(self, image: np.ndarray, pts: int | None = None) -> None:
        """Append one RGB uint8 HxWx3 frame; `pts` in units of `time_base`, default one frame after the last."""
        if self._tmp is None:
            raise RuntimeError("VideoWriter.write called outside its `with` block")
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"frames must be uint8 HxWx3 RGB, got {image.dtype} {image.shape}")
        size = (image.shape[1], image.shape[0])
        if self._size is None:
            self._size = size
            if self._container is not None:
                self._stream = self._add_video_stream(*size)
                if self.audio_from is not None:
                    self._audio = _AudioCopy(self.audio_from, self._container)
        elif size != self._size:
            raise ValueError(f"frame size {size} differs from the first frame's {self._size}")
        if pts is None:
            pts = self._pts[-1] + max(1, round(1 / (self.fps * self.time_base))) if self._pts else 0
        elif self._pts and pts <= self._pts[-1]:
            raise ValueError(f"timestamps must increase: pts {pts} after {self._pts[-1]}")
        if self._container is None:
            Image.fromarray(image).save(self._tmp / f"{len(self._pts):06d}.png", compress_level=3)
        else:
            self._encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24"), pts)
        self._pts.append(pts)

    def _add_video_stream(self, width: int, height: int) -> av.VideoStream:
        assert self._container is not None
        if self.codec == "ffv1":
            options = {"level": "3", "slicecrc": "1", **self.encoder_options}
            stream = self._container.add_stream("ffv1", rate=self.fps, options=options)
            stream.pix_fmt = "bgr0"
        else:
            options = {"crf": str(self.crf), **self.encoder_options}
            stream = self._container.add_stream("libx264", rate=self.fps, options=options)
            # 4:2:0 needs even sides; odd-sized frames keep full chroma instead of being cropped
            stream.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        stream.width, stream.height = width, height
        stream.time_base = self.time_base
        stream.codec_context.time_base = self.time_base
        return stream

    def _encode(self, frame: av.VideoFrame | None, pts: int) -> None:
        assert self._container is not None and self._stream is not None
        if frame is not None:
            frame.pts, frame.time_base = pts, self.time_base
        try:
            packets = self._stream.encode(frame)
        except av.FFmpegError as exc:
            if self._pts:
                raise
            raise InputError(
                f"{self.path}: the {self.codec} encoder refused its options {self.encoder_options or ''} "
                f"({_reason(exc)})",
                hint="check --crf and --ffmpeg-config",
            ) from None
        for packet in packets:
            if self._audio is not None and packet.pts is not None and packet.time_base is not None:
                self._audio.copy_until(packet.pts * packet.time_base)
            self._container.mux(packet)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self._discard()
            return
        try:
            self._finish()
        except BaseException:
            self._discard()
            raise

    def _finish(self) -> None:
        assert self._tmp is not None
        if not self._pts:
            raise ValueError(f"{self.path}: no frames were written")
        if self._container is None:
            timing = {"time_base": str(self.time_base), "fps": str(self.fps), "pts": self._pts}
            (self._tmp / TIMESTAMPS_FILE).write_text(json.dumps(timing))
            if self.path.exists():
                raise IfaditError(f"{self.path}: output folder already exists; remove it or choose another")
            self._tmp.rename(self.path)
            self._tmp = None
            return
        self._encode(None, 0)
        if self._audio is not None:
            self._audio.copy_until(None)
            self._audio.close()
            self._audio = None
        self._container.close()
        self._container = None
        with open(self._tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(self._tmp, self.path)
        self._tmp = None

    def _discard(self) -> None:
        for closer in (self._audio, self._container):
            if closer is not None:
                with contextlib.suppress(Exception):
                    closer.close()
        self._audio = self._container = None
        if self._tmp is not None:
            if self._tmp.is_dir():
                shutil.rmtree(self._tmp, ignore_errors=True)
            else:
                self._tmp.unlink(missing_ok=True)
            self._tmp = None


class _AudioCopy:
    """Copies the audio packets of a source file into an output container, interleaved by time."""

    def __init__(self, source: Path, output: av.container.OutputContainer) -> None:
        self._input = _open_input(source)
        self._map: dict[int, Any] = {}
        for stream in self._input.streams.audio:
            if stream.codec_context.name not in output.supported_codecs:
                self._input.close()
                raise InputError(
                    f"{source}: audio codec {stream.codec_context.name!r} cannot be copied into "
                    f"{output.format.name}; write .mkv instead"
                )
            out = output.add_stream_from_template(stream)
            out.metadata.clear()  # no language, handler or creation-time tags from the input
            self._map[stream.index] = out
        self._packets = self._input.demux(list(self._input.streams.audio)) if self._map else iter(())
        self._pending: Any = None
        self._output = output
        self._source = source

    def copy_until(self, seconds: Fraction | None) -> None:
        """Mux every audio packet that starts before `seconds` (all remaining ones when None)."""
        try:
            while True:
                packet = self._pending or next(self._packets, None)
                self._pending = None
                if packet is None:
                    return
                if packet.size == 0 or packet.dts is None:
                    continue
                start = (packet.pts if packet.pts is not None else packet.dts) * packet.time_base
                if seconds is not None and start > seconds:
                    self._pending = packet
                    return
                packet.stream = self._map[packet.stream.index]
                self._output.mux(packet)
        except av.FFmpegError as exc:
            raise InputError(f"{self._source}: audio could not be copied ({_reason(exc)})") from None

    def close(self) -> None:
        self._input.close()
