"""`ifadit anonymize`: replace the faces in images, folders and videos under a vault key, with signed manifests."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cli.detect import detection_options
from cli.options import VaultArgs, emit, json_option, usage_errors, vault_options
from ifadit.backends.base import BACKENDS
from ifadit.media.image import DEFAULT_MAX_PIXELS
from ifadit.pipeline.anonymize import AnonymizeOptions, ItemResult
from ifadit.pipeline.batch import ENGINES, RunReport, anonymize_paths, default_backend, engine_for


def _report_error(result: ItemResult) -> None:
    if result.error:
        click.echo(f"Error: {result.error}", err=True)


def _text(report: RunReport) -> str:
    lines = [
        f"{item.source} -> {item.target} ({item.faces} face{'' if item.faces == 1 else 's'})"
        for item in report.items
        if item.error is None
    ]
    key = f"key {report.key_handle} v{report.key_version}" if report.key_handle else "no key"
    done = len(report.items) - len(report.failed)
    lines.append(
        f"anonymized {done} of {len(report.items)} files with {report.backend} under {key}; "
        f"audit entry {report.audit_seq}"
    )
    return "\n".join(lines)


@click.command("anonymize")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    required=True,
    help="Output folder (mirrors the inputs), or the output file when there is one input file.",
)
@vault_options
@click.option(
    "--key",
    "key_handle",
    default=None,
    show_default="newest active key of --case",
    help="Key handle (kh_...) to anonymize under.",
)
@click.option(
    "--case",
    "case_id",
    default=None,
    show_default="none",
    help="Use the newest active key of this case (never written into outputs).",
)
@click.option(
    "--backend",
    default=None,
    show_default="ifadit when its model is shipped, else blur",
    help=f"How faces are replaced: {', '.join(sorted(BACKENDS))}. blur, pixelate and mask cannot be "
    "undone from pixels (only --seal-original makes them restorable).",
)
@click.option(
    "--model-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    show_default="the backend's own",
    help="Model folder of a model backend: ifadit (default pretrained/ifadit-64), id2face (default "
    "pretrained/id2face-64) or reverse-personalization "
    "(a local diffusers SDXL folder with an identity adapter, default $IFADIT_SDXL_DIR; see "
    "docs/backends.md). Nothing is downloaded.",
)
@click.option(
    "--device", default=None, show_default="cpu", help="Where a model backend runs: cpu, cuda, cuda:1 ..."
)
@click.option(
    "--identity-scale",
    type=float,
    default=None,
    show_default="-6.0",
    help="reverse-personalization: guidance scale of the identity term. Negative pushes the face away "
    "from its identity (-4 ... -8; further is more anonymous and less faithful); 0 reconstructs it.",
)
@click.option(
    "--attributes",
    default=None,
    show_default="none",
    help="reverse-personalization: prompt that replaces the source prompt when regenerating, e.g. "
    '"an elderly man" (age, sex ...); pose, gaze, expression and background are kept.',
)
@click.option(
    "--steps",
    type=click.IntRange(1),
    default=None,
    show_default="25",
    help="reverse-personalization: inversion steps. Fewer is faster and coarser; time grows linearly "
    "(2 x steps + 1 UNet calls per batch of faces). id2face: DDIM steps (default: the model's, 25).",
)
@click.option(
    "--text-guidance",
    type=click.FloatRange(0),
    default=None,
    show_default="1.0",
    help="reverse-personalization: text guidance when regenerating; above 1 strengthens --attributes "
    "at one more UNet call per step.",
)
@click.option(
    "--seal-original",
    is_flag=True,
    default=False,
    show_default=True,
    help="Seal each original face region (AES-256-GCM under the case key) into the manifest, so an "
    "authorized `restore --exact` gets it back bit for bit. Outputs grow by the sealed pixels.",
)
@detection_options
@click.option(
    "--mask-scale",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    show_default="1.3 for a reversible backend, else 1.0",
    help="Size of the replaced face ellipse: above 1 also covers hair line, ears and chin. A reversible "
    "backend needs its surrogate to cover the whole face that restore reads back.",
)
@click.option(
    "--keep-audio",
    is_flag=True,
    default=False,
    show_default=True,
    help="Copy a video's audio unchanged (voices are NOT anonymized).",
)
@click.option(
    "--lossless",
    is_flag=True,
    default=False,
    show_default=True,
    help="Write videos as lossless FFV1 .mkv (large; needed for --seal-original on video).",
)
@click.option(
    "--confirm-frames",
    type=click.IntRange(1),
    default=5,
    show_default=True,
    help="Video: hold frames back this many frames so that a face is replaced only once its track is "
    "confirmed, from its first frame on. 1 replaces every detection at once (no buffer).",
)
@click.option(
    "--confirm-hits",
    type=click.IntRange(1),
    default=2,
    show_default=True,
    help="Video: detections a track needs within --confirm-frames before its faces are replaced; lone "
    "one-frame boxes are left alone.",
)
@click.option(
    "--confirm-score",
    type=float,
    default=None,
    show_default="the detector's threshold + 0.15 for hog, + 0 for the others",
    help="Video: mean detector score a track needs. Weak boxes on face-like objects (a badge, a patch) stay "
    "below it; lower it if real faces in your footage are missed, at the price of more false replacements.",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(1),
    default=DEFAULT_MAX_PIXELS,
    show_default=True,
    help="Refuse images larger than this many pixels, before decoding.",
)
@click.option(
    "--engine",
    "engine_name",
    type=click.Choice(ENGINES),
    default="serial",
    show_default=True,
    help="serial: in this process. ray: on a Ray Data actor pool (pip install 'ifadit[ray]'); the vault "
    "stays on this machine, workers get the key in memory only.",
)
@click.option(
    "--address", default=None, show_default="a local Ray", help="Ray cluster to join (--engine ray)."
)
@click.option(
    "--workers",
    type=click.IntRange(1),
    default=2,
    show_default=True,
    help="Ray actors, each loading the backend and detector once (--engine ray).",
)
@click.option(
    "--gpus-per-worker",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    help="GPUs reserved per Ray actor (--engine ray).",
)
@click.option(
    "--checkpoint",
    type=click.IntRange(1),
    default=None,
    show_default="one audit entry for the job",
    help="Make the job resumable: commit, journal and publish every N files; rerunning the same "
    "command skips verified outputs.",
)
@json_option
def anonymize_command(
    inputs: tuple[Path, ...],
    output: Path,
    vault_args: VaultArgs,
    key_handle: str | None,
    case_id: str | None,
    backend: str | None,
    model_dir: Path | None,
    device: str | None,
    identity_scale: float | None,
    attributes: str | None,
    steps: int | None,
    text_guidance: float | None,
    seal_original: bool,
    detector: str,
    insightface_pack: Path | None,
    thresh: float | None,
    scale: tuple[int, int] | None,
    upsample: int,
    mask_scale: float | None,
    keep_audio: bool,
    lossless: bool,
    confirm_frames: int,
    confirm_hits: int,
    confirm_score: float | None,
    max_pixels: int,
    engine_name: str,
    address: str | None,
    workers: int,
    gpus_per_worker: float,
    checkpoint: int | None,
    as_json: bool,
) -> None:
    """Replace every face in images, folders (recursive) and videos; operator role.

    Each output carries a manifest signed by the vault (key handle and version, face boxes, audit entry)
    and the run is one audit entry. A bad file is reported and skipped; the exit status is then non-zero.

    \b
    Example:
      ifadit anonymize photos/ clip.mp4 -o released/ --case C-17 --seal-original
      ifadit anonymize photo.jpg -o out.png --backend reverse-personalization --model-dir models/sdxl-faceid \\
          --identity-scale -6 --attributes "an elderly man"
    """
    chosen = {
        "model_dir": model_dir,
        "device": device,
        "identity_scale": identity_scale,
        "attributes": attributes,
        "steps": steps,
        "text_guidance": text_guidance,
    }
    options = AnonymizeOptions(
        backend=backend or default_backend(),
        seal_original=seal_original,
        detector=detector,
        thresh=thresh,
        scale=scale,
        upsample=upsample,
        insightface_pack=insightface_pack,
        mask_scale=mask_scale,
        keep_audio=keep_audio,
        lossless=lossless,
        confirm_frames=confirm_frames,
        confirm_hits=confirm_hits,
        confirm_score=confirm_score,
        max_pixels=max_pixels,
        backend_options=tuple((name, value) for name, value in chosen.items() if value is not None),
    )
    with vault_args.open() as vault, usage_errors():
        engine = engine_for(engine_name, address=address, workers=workers, gpus_per_worker=gpus_per_worker)
        report = anonymize_paths(
            vault,
            inputs,
            output,
            options,
            key=key_handle,
            case=case_id,
            progress=sys.stderr.isatty(),
            on_item=_report_error,
            engine=engine,
            checkpoint=checkpoint,
        )
    emit(report.as_dict() if as_json else report, as_json, _text)
    if report.exit_code:
        sys.exit(report.exit_code)


def register(group: click.Group) -> None:
    """Add `anonymize` to the root command."""
    group.add_command(anonymize_command)
