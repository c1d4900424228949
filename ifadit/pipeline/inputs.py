"""Which files a run works on and where each result goes: files, folders (recursive) and videos.

A file given on the command line is taken whatever its suffix (reading it names the problem if it is not
an image or video); inside a folder only known image and video suffixes are picked up, and manifest
sidecars and hidden files are skipped. Results mirror the inputs under the output folder: a file lands
as `OUT/<name>`, a folder's files as `OUT/<path below that folder>`. A single file without an output
name lands beside itself as `NAME_anonymized.EXT` (deface's default, `default_output`). Outputs already on
disk are refused unless the run is told to overwrite them (`refuse_existing`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ifadit.errors import InputError
from ifadit.media.manifest import SIDECAR_SUFFIX, sidecar_path

ItemKind = Literal["image", "video"]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".pgm"})
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"})
KEPT_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})  # written in the same format
KEPT_VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv"})


@dataclass(frozen=True)
class Item:
    """One input and the path its result will have."""

    source: Path
    target: Path
    kind: ItemKind


def kind_of(path: Path) -> ItemKind:
    """ "video" for a known video suffix, else "image"."""
    return "video" if path.suffix.lower() in VIDEO_SUFFIXES else "image"


def output_name(path: Path, kind: ItemKind, *, lossless_video: bool) -> str:
    """The result's file name: images keep PNG/JPEG/WebP and become PNG otherwise; lossless video is .mkv."""
    suffix = path.suffix.lower()
    if kind == "image":
        return path.name if suffix in KEPT_IMAGE_SUFFIXES else path.stem + ".png"
    if lossless_video:
        return path.stem + ".mkv"
    return path.name if suffix in KEPT_VIDEO_SUFFIXES else path.stem + ".mp4"


def default_output(inputs: Sequence[Path], *, lossless_video: bool) -> Path:
    """`NAME_anonymized.EXT` beside a single input file (EXT as `output_name` chooses); `ValueError` otherwise."""
    if len(inputs) != 1 or inputs[0].is_dir():
        raise ValueError("-o is required for a folder or several inputs: name the output folder")
    source = inputs[0]
    name = output_name(source, kind_of(source), lossless_video=lossless_video)
    return source.with_name(f"{source.stem}_anonymized{Path(name).suffix}")


def refuse_existing(items: Sequence[Item]) -> None:
    """Raise `InputError` naming the first item whose output (or its manifest sidecar) already exists."""
    taken = [item.target for item in items if item.target.exists() or sidecar_path(item.target).exists()]
    if taken:
        more = f" (and {len(taken) - 1} more)" if len(taken) > 1 else ""
        raise InputError(
            f"{taken[0]}: output already exists{more}; nothing was written",
            hint="pass --force to overwrite, or choose another -o",
        )


def _folder_files(folder: Path, skip: Path) -> list[Path]:
    found = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or path.name.endswith(SIDECAR_SUFFIX):
            continue
        if path.resolve().is_relative_to(skip):  # an output folder inside the input folder
            continue
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
            found.append(path)
    return found


def plan_items(inputs: Sequence[Path], output: Path, *, lossless_video: bool) -> list[Item]:
    """Expand `inputs` into items with their targets under the folder `output`.

    A single image or video input may instead name its output file directly (`output` with a suffix
    that is not a folder). An output folder inside an input folder is not read as input. A missing input
    becomes an item like any other (reading it reports the error, and the run goes on). Raises `InputError`
    for two inputs with one target or a target that would overwrite an input.
    """
    if not inputs:
        raise ValueError("no inputs given")
    single_file = len(inputs) == 1 and not inputs[0].is_dir() and output.suffix != "" and not output.is_dir()
    items: list[Item] = []
    for source in inputs:
        if source.is_dir():
            for path in _folder_files(source, output.resolve()):
                kind = kind_of(path)
                relative = path.relative_to(source).parent
                target = output / relative / output_name(path, kind, lossless_video=lossless_video)
                items.append(Item(path, target, kind))
        else:
            kind = kind_of(source)
            target = (
                output if single_file else output / output_name(source, kind, lossless_video=lossless_video)
            )
            items.append(Item(source, target, kind))
    seen: dict[Path, Path] = {}
    sources = {item.source.resolve() for item in items}
    for item in items:
        resolved = item.target.resolve()
        if resolved in sources:
            raise InputError(
                f"{item.target}: output would overwrite an input", hint="choose another -o folder"
            )
        if resolved in seen:
            raise InputError(f"{seen[resolved]} and {item.source} would both be written to {item.target}")
        seen[resolved] = item.source
    return items
