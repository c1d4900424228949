"""`ifadit anonymize`: replace the faces in images, folders and videos under a vault key, with signed manifests."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from ifadit.backends.base import BACKENDS
from ifadit.media.files import DEFAULT_MAX_PIXELS
from ifadit.pipeline.anonymize import AnonymizeOptions, ItemResult
from ifadit.pipeline.batch import ENGINES, RunReport, anonymize_paths, default_backend, engine_for
from ifadit.pipeline.inputs import default_output
from ifadit_cli.detect import detection_options
from ifadit_cli.options import VaultArgs, emit, file_option, json_option, usage_errors, vault_options

BACKEND_OPTIONS = ("model_dir", "device", "identity_scale", "attributes", "steps", "text_guidance")
LOCAL_ENGINE_OPTIONS = {  # how a local run is spread and resumed; the vault service runs its jobs itself
    "engine_name": "--engine",
    "address": "--address",
    "workers": "--workers",
    "gpus_per_worker": "--gpus-per-worker",
    "checkpoint": "--checkpoint",
}
REPLACEWITH = {  # deface's --replacewith names -> backends
    "blur": "blur",
    "pixelate": "pixelate",
    "mosaic": "pixelate",
    "mask": "mask",
    "solid": "mask",
    "none": "none",
    "img": "img",
}


class EncoderOptions(click.ParamType):
    """A JSON object of FFmpeg encoder options -> sorted (name, value) string pairs."""

    name = "JSON"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[tuple[str, str], ...]:
        if isinstance(value, tuple):
            return value
        try:
            parsed = json.loads(str(value))
        except json.JSONDecodeError as exc:
            self.fail(f"not JSON ({exc.msg}): {value!r}", param, ctx)
        if not isinstance(parsed, dict) or not all(
            isinstance(v, str | int | float) and not isinstance(v, bool) for v in parsed.values()
        ):
            self.fail('expected a JSON object of names and values, e.g. {"preset": "slow"}', param, ctx)
        return tuple(sorted((str(k), str(v)) for k, v in parsed.items()))


def _line(item: ItemResult) -> str:
    faces = f"{item.faces} face{'' if item.faces == 1 else 's'}"
    return f"{item.source} -> {item.target} ({faces}{', already done' if item.resumed else ''})"


def _report_item(result: ItemResult) -> None:
    """One stderr line per file as it finishes (above the progress bars, also when stderr is no terminal)."""
    tqdm.write(f"Error: {result.error}" if result.error else _line(result), file=sys.stderr)


def _text(report: RunReport) -> str:
    lines = [_line(item) for item in report.items if item.error is None]
    key = f"key {report.key_handle} v{report.key_version}" if report.key_handle else "no key"
    done = len(report.items) - len(report.failed)
    summary = f"anonymized {done} of {len(report.items)} files with {report.backend} under {key}"
    if report.audit_seq is None:
        lines.append(f"{summary}: nothing written; the run is audited as failed")
    else:
        lines.append(f"{summary}; audit entry {report.audit_seq}")
    return "\n".join(lines)


@click.command("anonymize")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    show_default="NAME_anonymized.EXT beside a single input file",
    help="Output folder (mirrors the inputs), or the output file when there is one input file.",
)
@click.option(
    "--force",
    is_flag=True,
    default=False,
    show_default=True,
    help="Overwrite outputs that already exist (without it the run stops before writing anything).",
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
    show_default="ifadit; a missing model is an error naming the fix",
    help=f"How faces are replaced: {', '.join(sorted(BACKENDS))}. blur, pixelate, mask, none and img cannot be "
    "undone from pixels (only --seal-original makes them restorable).",
)
@click.option(
    "--replacewith",
    type=click.Choice(sorted(REPLACEWITH)),
    default=None,
    show_default="--backend's default",
    help="deface's names for the one-way backends: blur, pixelate (mosaic), mask (solid: a filled face), "
    "none (faces left as they are but still detected and listed in the manifest; see --boxes), img (cover "
    "each face with --replaceimg).",
)
@file_option(
    "--replaceimg",
    exists=True,
    default=None,
    show_default="none",
    help="Picture pasted over each face with --replacewith img (scaled and turned with the face).",
)
@click.option(
    "--boxes",
    is_flag=True,
    default=False,
    show_default=True,
    help="Draw each replaced face's detection box (green) onto the output, e.g. to review a --replacewith "
    "none run. Not with --seal-original: an exact restore could not remove the boxes.",
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
    "--keep-metadata",
    is_flag=True,
    default=False,
    show_default=True,
    help="Images: keep the input's EXIF (capture time, camera model, exposure ...) and ICC colour profile. "
    "GPS, serial numbers, owner name and maker notes are still dropped (see --keep-gps, --keep-serial), "
    "and always the EXIF thumbnail, which shows the original faces. Videos keep no metadata.",
)
@click.option(
    "--keep-gps",
    is_flag=True,
    default=False,
    show_default=True,
    help="With --keep-metadata: also keep the GPS position (it tells where the photo was taken).",
)
@click.option(
    "--keep-serial",
    is_flag=True,
    default=False,
    show_default=True,
    help="With --keep-metadata: also keep camera and lens serial numbers, owner name, image id and maker "
    "notes (they tie the image to one device).",
)
@click.option(
    "--crf",
    type=click.IntRange(0, 51),
    default=None,
    show_default="18",
    help="H.264 video quality: lower is better and larger (0 nearly lossless, 18 visually transparent, 23 "
    "FFmpeg's default, 28 small). Not with --lossless.",
)
@click.option(
    "--ffmpeg-config",
    type=EncoderOptions(),
    default="{}",
    show_default=True,
    help='Video encoder options as a JSON object, passed to FFmpeg through PyAV, e.g. \'{"preset": "slow", '
    '"tune": "film"}\' (libx264, or FFV1 with --lossless). FFmpeg ignores names its encoder does not know.',
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
    output: Path | None,
    force: bool,
    vault_args: VaultArgs,
    key_handle: str | None,
    case_id: str | None,
    engine_name: str,
    address: str | None,
    workers: int,
    gpus_per_worker: float,
    checkpoint: int | None,
    as_json: bool,
    **settings: Any,  # how faces are found and replaced: `build_options`
) -> None:
    """Replace every face in images, folders (recursive) and videos; operator role.

    Each output carries a manifest signed by the vault (key handle and version, face boxes, audit entry)
    and the run is one audit entry. Each file is reported on stderr as it finishes (a video also shows its
    frames on a terminal); a bad file is reported and skipped, and the exit status is then non-zero. A run
    that anonymized no file writes nothing and is audited as failed. Existing outputs are refused unless
    --force. An output folder gets run.json: inputs, outputs, faces, backend, key handle and version,
    audit entries; no case name, no digest of an original.

    Against a vault service (--vault https://...) the files are sent to the service, which computes with
    the key (it never leaves the service) and signs the manifests; the outputs are published here once
    the whole run came back (no per-file progress meanwhile; --engine and --checkpoint are local only).

    \b
    Example:
      ifadit anonymize photos/ clip.mp4 -o released/ --case C-17 --seal-original
      ifadit anonymize photo.jpg --replacewith solid      # writes photo_anonymized.jpg
      ifadit anonymize photo.jpg -o out.png --backend reverse-personalization --model-dir models/sdxl-faceid \\
          --identity-scale -6 --attributes "an elderly man"
    """
    options = build_options(settings)
    with usage_errors():
        output = output or default_output(inputs, lossless_video=options.lossless)
    if vault_args.remote:
        report = _anonymize_through_service(vault_args, inputs, output, options, key_handle, case_id, force)
        _finish(report, as_json)
        return
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
            on_item=_report_item,
            engine=engine,
            checkpoint=checkpoint,
            force=force,
        )
    _finish(report, as_json)


def _finish(report: RunReport, as_json: bool) -> None:
    emit(report.as_dict() if as_json else report, as_json, _text)
    if report.exit_code:
        sys.exit(report.exit_code)


def _anonymize_through_service(
    vault_args: VaultArgs,
    inputs: tuple[Path, ...],
    output: Path,
    options: AnonymizeOptions,
    key_handle: str | None,
    case_id: str | None,
    force: bool,
) -> RunReport:
    """The run computed by the vault service (`--vault URL`): the files go there, the outputs come back."""
    context = click.get_current_context()
    local_only = [
        flag
        for name, flag in LOCAL_ENGINE_OPTIONS.items()
        if context.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE
    ]
    if local_only:
        raise click.UsageError(
            f"{', '.join(local_only)}: the vault service runs the job itself; drop them with --vault URL"
        )
    from ifadit.pipeline.remote_anonymize import anonymize_remote

    if sys.stderr.isatty():
        click.echo(f"sending the files to {vault_args.url}; they come back when all are done", err=True)
    with vault_args.client() as client, usage_errors():
        return anonymize_remote(
            client, inputs, output, options, key=key_handle, case=case_id, force=force, on_item=_report_item
        )


def build_options(settings: dict[str, Any]) -> AnonymizeOptions:
    """The run's options from the command's face and output settings (usage errors for clashing ones)."""
    backend, replacewith = settings.pop("backend"), settings.pop("replacewith")
    if backend is not None and replacewith is not None and REPLACEWITH[replacewith] != backend:
        raise click.UsageError(f"--backend {backend} and --replacewith {replacewith} disagree: give one")
    backend = backend or (REPLACEWITH[replacewith] if replacewith else default_backend())
    chosen = {name: settings.pop(name) for name in BACKEND_OPTIONS}
    chosen["image"] = settings.pop("replaceimg")
    if (chosen["image"] is None) == (backend == "img"):
        raise click.UsageError("--replacewith img needs --replaceimg FILE, and --replaceimg needs img")
    if (settings["keep_gps"] or settings["keep_serial"]) and not settings["keep_metadata"]:
        raise click.UsageError("--keep-gps and --keep-serial go with --keep-metadata")
    settings["encoder_options"] = settings.pop("ffmpeg_config")
    with usage_errors():
        options = AnonymizeOptions(
            backend=backend,
            backend_options=tuple((name, value) for name, value in chosen.items() if value is not None),
            **settings,
        )
        options.check()
    return options


def register(group: click.Group) -> None:
    """Add `anonymize` to the root command."""
    group.add_command(anonymize_command)
