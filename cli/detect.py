"""`ifadit detect`: list the faces (box, score, 5 landmarks) in image files, optionally with previews."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ifadit.errors import IfaditError
from ifadit.faces.registry import DETECTORS, get_detector
from ifadit.media.files import DEFAULT_MAX_PIXELS
from ifadit.pipeline.detect import DetectionReport, detect_file
from ifadit_cli.options import usage_errors


class ScaleType(click.ParamType):
    """`WxH` (e.g. 640x360) -> (W, H), as deface's --scale."""

    name = "WxH"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        try:
            width, height = (int(part) for part in str(value).lower().split("x"))
        except ValueError:
            self.fail(f"{value!r} is not WxH, e.g. 640x360", param, ctx)
        if width < 1 or height < 1:
            self.fail(f"{value!r}: width and height must be positive", param, ctx)
        return width, height


INSIGHTFACE_PACK_HELP = (
    "Folder of an insightface model pack you already have (e.g. buffalo_l: det_10g.onnx, w600k_r50.onnx; "
    "insightface keeps its packs in ~/.insightface/models/NAME), used with --detector insightface; its "
    "detector is found by its inputs and outputs. Nothing is downloaded."
)
THRESH_DEFAULTS = "0 for hog, cnn (SVM margin, MMOD confidence); 0.5 for insightface (probability)"


DETECTION_OPTIONS = [  # shared by every command that detects faces (detect, anonymize)
    click.option(
        "--detector",
        type=click.Choice(sorted(DETECTORS)),
        default="hog",
        show_default=True,
        help="hog: fast CPU HOG+SVM, frontal faces of ~80 px and up. cnn: dlib MMOD CNN, finds more "
        "(small, turned, blurred faces) at about 80x the time. insightface: the SCRFD/RetinaFace detector of "
        "your own insightface model pack (--insightface-pack; needs pip install 'ifadit[insightface]').",
    ),
    click.option(
        "--insightface-pack",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        show_default="$IFADIT_INSIGHTFACE_PACK",
        help=INSIGHTFACE_PACK_HELP,
    ),
    click.option(
        "--thresh",
        type=float,
        default=None,
        show_default=THRESH_DEFAULTS,
        help="Detection score threshold: lower finds more faces and more false positives, higher fewer of both.",
    ),
    click.option(
        "--scale",
        type=ScaleType(),
        default=None,
        show_default="full resolution (insightface: 640x640)",
        help="Resize to WxH before detection (faster on large images, misses small faces); boxes map back. "
        "insightface: the network input, in multiples of its largest stride (32 for SCRFD); a model with a fixed "
        "input refuses another size.",
    ),
    click.option(
        "--upsample",
        type=click.IntRange(0, 4),
        default=0,
        show_default=True,
        help="Double the image this many times before detection: finds smaller faces, 4x slower per step.",
    ),
]


def detection_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add --detector, --insightface-pack, --thresh, --scale and --upsample to `command`."""
    for option in reversed(DETECTION_OPTIONS):
        command = option(command)
    return command


def _render_table(report: DetectionReport) -> str:
    count = len(report.faces)
    lines = [f"{report.path}: {count} face{'' if count == 1 else 's'} ({report.width}x{report.height})"]
    if report.faces:
        lines.append(f"  {'#':>2}  {'x0':>7} {'y0':>7} {'x1':>7} {'y1':>7}  {'score':>6}  landmarks (x,y)")
    for index, face in enumerate(report.faces):
        x0, y0, x1, y1 = face.box
        marks = " ".join(f"({x:.0f},{y:.0f})" for x, y in face.landmarks)
        lines.append(f"  {index:>2}  {x0:7.1f} {y0:7.1f} {x1:7.1f} {y1:7.1f}  {face.score:6.3f}  {marks}")
    if report.preview:
        lines.append(f"  preview: {report.preview}")
    return "\n".join(lines)


@click.command("detect")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON array (file, size, faces) instead of a table."
)
@detection_options
@click.option(
    "--preview-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    show_default="no previews",
    help="Write <file name>.faces.png with boxes, landmarks and scores into this folder.",
)
@click.option(
    "--require-face",
    is_flag=True,
    help="Treat a file with no face as an error (non-zero exit) instead of '0 faces'.",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(1),
    default=DEFAULT_MAX_PIXELS,
    show_default=True,
    help="Refuse images larger than this many pixels (decompression-bomb guard), before decoding.",
)
def detect_command(
    images: tuple[Path, ...],
    as_json: bool,
    detector: str,
    insightface_pack: Path | None,
    thresh: float | None,
    scale: tuple[int, int] | None,
    upsample: int,
    preview_dir: Path | None,
    require_face: bool,
    max_pixels: int,
) -> None:
    """Find faces and their 5 landmarks in image files.

    Each file is reported with its faces (box x0 y0 x1 y1 in pixels, score, landmarks in dlib's 5-point
    order). A bad file gives one `Error:` line; the remaining files are still processed and the exit
    status is non-zero at the end.

    \b
    Example:
      ifadit detect photo.jpg scans/*.png --preview-dir previews --json
      ifadit detect photo.jpg --detector insightface --insightface-pack ~/models/buffalo_l
    """
    if insightface_pack is not None and detector != "insightface":
        raise click.UsageError("--insightface-pack applies to --detector insightface only")
    with usage_errors():
        finder = get_detector(
            detector, thresh=thresh, scale=scale, upsample=upsample, pack_dir=insightface_pack
        )
    results, exit_code = [], 0
    for path in images:
        try:
            report = detect_file(
                path, finder, preview_dir=preview_dir, require_face=require_face, max_pixels=max_pixels
            )
        except IfaditError as exc:
            click.echo(f"Error: {exc}", err=True)
            exit_code = max(exit_code, exc.exit_code)
            results.append({"file": str(path), "error": str(exc)})
            continue
        results.append(report.as_dict())
        if not as_json:
            click.echo(_render_table(report))
    if as_json:
        click.echo(json.dumps(results, indent=2))
    if exit_code:
        sys.exit(exit_code)


def register(group: click.Group) -> None:
    """Add `detect` to the root command."""
    group.add_command(detect_command)
