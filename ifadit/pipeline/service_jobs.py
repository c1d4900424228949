"""What the vault service runs for a workstation: anonymize and restore over the files it was sent.

A workstation (`ifadit.pipeline.remote`) plans the run, numbers its files and sends them with the run's
options; here they go through the same `anonymize_paths` and `restore_paths` as on a local vault, as the
token's user inside the service, so key material, the sealing key and the manifest signing key never
leave it. What names the service's own files or hardware (a model folder, a device, a detector pack) is
the service's to choose and is refused from a client, as are encoder options beyond a few that name no
file and a pixel limit above the service's. Results name files by their names in the job.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ifadit.media.files import DEFAULT_MAX_PIXELS
from ifadit.pipeline.anonymize import AnonymizeOptions
from ifadit.pipeline.batch import anonymize_paths
from ifadit.pipeline.restore import inspect_items, restore_paths
from ifadit.pipeline.restore_plan import RESTORE_FIELDS, RestoreOptions, plan_restore
from ifadit.pipeline.run_index import RUN_INDEX_NAME, read_runs
from keyvault import Vault
from keyvault.service.jobs import JobRunner, check_name

CLIENT_BACKEND_OPTIONS = frozenset({"identity_scale", "attributes", "steps", "text_guidance", "image"})
SERVICE_CHOSEN = "the vault service runs its own models on its own device: {name} is set where it runs"
CLIENT_ENCODER_OPTIONS = frozenset({"preset", "tune", "profile", "level"})  # none of them names a file


def anonymize_options_to_wire(options: AnonymizeOptions, image_name: str | None) -> dict[str, Any]:
    """The options as JSON for the service; a `--replaceimg` picture travels as the job file `image_name`."""
    for name, _value in options.backend_options:
        if name not in CLIENT_BACKEND_OPTIONS:
            raise ValueError(SERVICE_CHOSEN.format(name=f"--{name.replace('_', '-')}"))
    if options.insightface_pack is not None:
        raise ValueError(SERVICE_CHOSEN.format(name="the insightface pack"))
    _check_encoder_options(name for name, _ in options.encoder_options)
    wire = {field.name: getattr(options, field.name) for field in dataclasses.fields(options)}
    wire["backend_options"] = [
        [name, image_name if name == "image" else value] for name, value in options.backend_options
    ]
    wire["scale"] = list(options.scale) if options.scale else None
    wire["encoder_options"] = [list(pair) for pair in options.encoder_options]
    return wire


def anonymize_options_from_wire(wire: Mapping[str, Any], inputs: Path) -> AnonymizeOptions:
    """The options a client sent, checked: known fields only, no service-chosen ones (`ValueError`)."""
    known = {field.name for field in dataclasses.fields(AnonymizeOptions)}
    unknown = sorted(set(wire) - known)
    if unknown:
        raise ValueError(f"unknown anonymize option {', '.join(unknown)}")
    fields = dict(wire)
    if fields.get("insightface_pack") is not None:
        raise ValueError(SERVICE_CHOSEN.format(name="the insightface pack"))
    chosen = []
    for name, value in fields.get("backend_options", []):
        if name not in CLIENT_BACKEND_OPTIONS:
            raise ValueError(SERVICE_CHOSEN.format(name=f"--{str(name).replace('_', '-')}"))
        chosen.append((name, inputs.joinpath(*check_name(str(value)).parts) if name == "image" else value))
    fields["backend_options"] = tuple(chosen)
    fields["scale"] = tuple(fields["scale"]) if fields.get("scale") else None
    fields["encoder_options"] = tuple((str(k), str(v)) for k, v in fields.get("encoder_options", []))
    _check_encoder_options(name for name, _ in fields["encoder_options"])
    _check_pixel_limit(fields.get("max_pixels", DEFAULT_MAX_PIXELS))
    options = AnonymizeOptions(**fields)
    options.check()
    return options


def _sources(inputs: Path, params: Mapping[str, Any]) -> list[Path]:
    names = params.get("files")
    if not isinstance(names, list) or not names:
        raise ValueError("a job names its files in order under 'files'")
    return [inputs.joinpath(*check_name(str(name)).parts) for name in names]


def _output(outputs: Path, params: Mapping[str, Any]) -> Path:
    """The output folder, or the one output file a single-file run names (its suffix chooses the format)."""
    single = params.get("single_output")
    return outputs.joinpath(*check_name(str(single)).parts) if single else outputs


def _relative(path: str | Path | None, folder: Path) -> str | None:
    return None if path is None else Path(path).relative_to(folder).as_posix()


def job_text(text: str, *folders: Path) -> str:
    """`text` with the service's job folders cut out of its paths: it names files by their job names."""
    for folder in folders:
        text = text.replace(f"{folder}/", "").replace(str(folder), ".")
    return text


def _naming_job_files(runner: JobRunner) -> JobRunner:
    """`runner`, whose errors name files by their job names, never by the service's own folders."""

    def run(vault: Vault, inputs: Path, outputs: Path, params: dict[str, Any]) -> dict[str, Any]:
        try:
            return runner(vault, inputs, outputs, params)
        except Exception as exc:
            if exc.args and isinstance(exc.args[0], str):
                exc.args = (job_text(exc.args[0], inputs, outputs), *exc.args[1:])
            raise

    return run


def run_anonymize(vault: Vault, inputs: Path, outputs: Path, params: dict[str, Any]) -> dict[str, Any]:
    """Anonymize the job's files as one audited run (`anonymize_paths`); the report by job file names."""
    options = anonymize_options_from_wire(params.get("options", {}), inputs)
    report = anonymize_paths(
        vault,
        _sources(inputs, params),
        _output(outputs, params),
        options,
        key=params.get("key"),
        case=params.get("case"),
    )
    index = outputs / RUN_INDEX_NAME
    runs = read_runs(index)
    index.unlink(missing_ok=True)  # the workstation writes its own, with its own paths
    items = [
        {
            "input": _relative(item.source, inputs),
            "output": None if item.error else _relative(item.target, outputs),
            "kind": item.kind,
            "faces": item.faces,
            "input_sha256": item.input_sha256,
            "output_sha256": item.output_sha256,
            "error": None if item.error is None else job_text(item.error, inputs, outputs),
            "exit_code": item.exit_code,
        }
        for item in report.items
    ]
    return {
        "backend": report.backend,
        "key_handle": report.key_handle,
        "key_version": report.key_version,
        "audit_seq": report.audit_seq,
        "audit_seqs": list(report.audit_seqs),
        "model_id": runs[-1]["model_id"] if runs else None,
        "items": items,
    }


def _check_encoder_options(names: Iterable[str]) -> None:
    """Refuse FFmpeg options a client may not set: some (x264's stats=) write files on the service's host."""
    refused = sorted(set(names) - CLIENT_ENCODER_OPTIONS)
    if refused:
        raise ValueError(
            f"the vault service takes only these encoder options: {', '.join(sorted(CLIENT_ENCODER_OPTIONS))}; "
            f"not {', '.join(refused)}"
        )


def _check_pixel_limit(max_pixels: object) -> None:
    """A client may lower the pixel limit of decoding, never raise it above the service's."""
    if not isinstance(max_pixels, int) or not 0 < max_pixels <= DEFAULT_MAX_PIXELS:
        raise ValueError(
            f"max_pixels must be 1..{DEFAULT_MAX_PIXELS} on the vault service, got {max_pixels!r}"
        )


def _restore_options(params: Mapping[str, Any]) -> RestoreOptions:
    given = params.get("options", {})
    unknown = sorted(set(given) - set(RESTORE_FIELDS))
    if unknown:
        raise ValueError(f"unknown restore option {', '.join(unknown)}")
    _check_pixel_limit(given.get("max_pixels", DEFAULT_MAX_PIXELS))
    return RestoreOptions(**given, force=True)


def run_restore_check(vault: Vault, inputs: Path, outputs: Path, params: dict[str, Any]) -> dict[str, Any]:
    """Check the job's files as a restore would before any request is filed (`inspect_items`: manifests,
    signatures, pixels, this case's active keys, a mode they allow); refusals are audited. No output."""
    items = plan_restore(_sources(inputs, params), outputs, force=True)
    inspect_items(vault, items, _restore_options(params))
    return {"files": len(items)}


def run_restore(vault: Vault, inputs: Path, outputs: Path, params: dict[str, Any]) -> dict[str, Any]:
    """Restore the job's files under the request named (`restore_paths`); the case report by job file names."""
    options = _restore_options(params)
    report = restore_paths(
        vault, _sources(inputs, params), _output(outputs, params), options, request=params.get("request")
    )
    body = report.as_dict()
    for file in body["files"]:
        file["input"] = _relative(file["input"], inputs)
        file["output"] = _relative(file["output"], outputs)
    return body


JOBS: dict[str, JobRunner] = {
    "anonymize": _naming_job_files(run_anonymize),
    "restore": _naming_job_files(run_restore),
    "restore-check": _naming_job_files(run_restore_check),
}
