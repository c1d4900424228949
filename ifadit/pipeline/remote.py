"""Anonymize and restore through the vault service: plan here, compute where the keys are, publish here.

The workstation plans the run exactly as a local one (targets, refusal of existing outputs), sends the
files under numbered names with the options (`ifadit.pipeline.service_jobs` runs them in the service),
receives the outputs with their service-signed manifests into a hidden staging folder and moves them
into place only once the whole job has come back, so a refusal or a broken connection leaves nothing
under the output names. No key material, condition or signing key ever reaches this process.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from ifadit.errors import InputError
from ifadit.media.image import atomic_write_bytes
from ifadit.media.manifest import sidecar_path
from ifadit.pipeline.anonymize import AnonymizeOptions, ItemResult
from ifadit.pipeline.batch import RunReport
from ifadit.pipeline.inputs import Item, plan_items, refuse_existing
from ifadit.pipeline.restore import CaseReport, RestoreReport, plan_restore, report_path
from ifadit.pipeline.restore_item import RestoreOptions
from ifadit.pipeline.run_index import RUN_INDEX_NAME, RunRecord, append_run, read_runs
from ifadit.pipeline.service_jobs import RESTORE_FIELDS, anonymize_options_to_wire
from ifadit.pipeline.staging import Staging

JOB_FOLDER = "job"


class JobClient(Protocol):
    """The one call of `keyvault.service.client.VaultClient` this module needs."""

    def run_job(
        self, kind: str, params: Mapping[str, Any], files: Mapping[str, Path], into: Path
    ) -> dict[str, Any]: ...


def job_name(index: int, path: Path) -> str:
    """A file's name in the job: numbered, so that equal names from different folders stay apart."""
    return f"{index:05d}_{path.name}"


def _single_output(items: Sequence[Item], output: Path) -> str | None:
    """The job's output name when the run writes one named file (its suffix chooses the format)."""
    if len(items) == 1 and items[0].target == Path(output):
        return f"00000_output{Path(output).suffix}"
    return None


def _upload(items: Sequence[Item]) -> dict[str, Path]:
    """The job's files by name: every input, and a video's sidecar manifest when it has one."""
    files: dict[str, Path] = {}
    for index, item in enumerate(items):
        if not item.source.is_file():
            raise InputError(f"{item.source}: no such file: nothing was sent")
        name = job_name(index, item.source)
        files[name] = item.source
        if sidecar_path(item.source).is_file():
            files[sidecar_path(Path(name)).as_posix()] = sidecar_path(item.source)
    return files


def _add_replacement_image(files: dict[str, Path], options: AnonymizeOptions) -> str | None:
    """Add `--replaceimg`'s picture to the job's files; its name in the job (None without one)."""
    image = dict(options.backend_options).get("image")
    if image is None:
        return None
    name = f"replaceimg/{Path(image).name}"
    files[name] = Path(image)
    return name


def _local_names(text: str, files: Mapping[str, Path]) -> str:
    """A message from the service with each job file name replaced by this machine's path."""
    for name in sorted(files, key=len, reverse=True):  # a longer name may contain a shorter one
        text = text.replace(name, str(files[name]))
    return text


def _run_job(
    client: JobClient, kind: str, params: Mapping[str, Any], files: Mapping[str, Path], into: Path
) -> dict[str, Any]:
    """The job's result; an error from the service names this machine's files, not their job names."""
    try:
        return client.run_job(kind, params, files, into)
    except Exception as exc:
        if exc.args and isinstance(exc.args[0], str):
            exc.args = (_local_names(exc.args[0], files), *exc.args[1:])
        raise


def _stage(staging: Staging, received: Path, target: Path) -> None:
    """Move a received output (and its sidecar) to its staged place for `target`."""
    staged = staging.path_for(target)
    os.replace(received, staged)
    if sidecar_path(received).exists():
        os.replace(sidecar_path(received), sidecar_path(staged))


def anonymize_remote(
    client: JobClient,
    inputs: Sequence[Path],
    output: Path,
    options: AnonymizeOptions,
    *,
    key: str | None = None,
    case: str | None = None,
    force: bool = False,
    on_item: Callable[[ItemResult], None] | None = None,
) -> RunReport:
    """`anonymize_paths` run by the vault service: one job, one audit entry, outputs published here."""
    options.check()
    items = plan_items(list(inputs), Path(output), lossless_video=options.lossless)
    if not items:
        raise InputError(f"no image or video files in {', '.join(map(str, inputs))}: nothing to anonymize")
    if not force:
        refuse_existing(items)
    files = _upload(items)
    params = {
        "options": anonymize_options_to_wire(options, _add_replacement_image(files, options)),
        "files": [job_name(index, item.source) for index, item in enumerate(items)],
        "single_output": _single_output(items, output),
        "key": key,
        "case": case,
    }
    single = params["single_output"] is not None
    root = Path(output).parent if single else Path(output)
    index = None if single else root / RUN_INDEX_NAME
    if index is not None:
        read_runs(index)  # a foreign file under the index's name is refused before anything is sent
    made_root = not root.exists()
    try:
        with Staging(root) as staging:
            assert staging.folder is not None
            received = staging.folder / JOB_FOLDER
            result = _run_job(client, "anonymize", params, files, received)
            results = _anonymize_results(items, result, staging, received, files)
            staging.publish()
    except BaseException:
        if made_root and not any(root.iterdir()):
            root.rmdir()  # a refused job leaves no empty output folder behind
        raise
    for item_result in results:
        if on_item is not None:
            on_item(item_result)
    report = RunReport(
        items=tuple(results),
        backend=result["backend"],
        key_handle=result["key_handle"],
        key_version=result["key_version"],
        audit_seq=result["audit_seq"],
        sealed=options.seal_original,
        audit_seqs=tuple(result["audit_seqs"]),
    )
    if index is not None and not all(item.error for item in results):
        record = RunRecord(
            report.backend,
            result["model_id"],
            report.key_handle,
            report.key_version,
            options,
            report.audit_seqs,
            results,
        )
        append_run(index, record)
    return report


def _anonymize_results(
    items: Sequence[Item],
    result: Mapping[str, Any],
    staging: Staging,
    received: Path,
    files: Mapping[str, Path],
) -> list[ItemResult]:
    """Each item's result with this machine's paths; its output staged for publishing."""
    results = []
    for item, got in zip(items, result["items"], strict=True):
        if got["output"] is not None:
            _stage(staging, received / got["output"], item.target)
        results.append(
            ItemResult(
                source=item.source,
                target=item.target,
                kind=item.kind,
                faces=got["faces"],
                input_sha256=got["input_sha256"],
                output_sha256=got["output_sha256"],
                error=None if got["error"] is None else _local_names(got["error"], files),
                exit_code=got["exit_code"],
            )
        )
    return results


def _restore_params(items: Sequence[Item], output: Path, options: RestoreOptions) -> dict[str, Any]:
    return {
        "options": {name: getattr(options, name) for name in RESTORE_FIELDS},
        "files": [job_name(index, item.source) for index, item in enumerate(items)],
        "single_output": _single_output(items, output),
    }


def check_restorable(
    client: JobClient, sources: Sequence[Path], output: Path, options: RestoreOptions
) -> int:
    """The service's check of the files before a request is filed for them, as a local restore checks them
    (manifest, signature, pixels, the case's keys, the mode): the error a restore would stop with, or the
    number of files."""
    options.check()
    items = plan_restore(sources, output, force=True)
    with Staging(Path(output).parent) as staging:
        assert staging.folder is not None
        result = _run_job(client, "restore-check", _restore_params(items, output, options), _upload(items),
                          staging.folder / JOB_FOLDER)  # fmt: skip
    return int(result["files"])


def restore_remote(
    client: JobClient,
    sources: Sequence[Path],
    output: Path,
    options: RestoreOptions,
    *,
    request: str | None,
    on_file: Callable[[RestoreReport], None] | None = None,
) -> CaseReport:
    """`restore_paths` run by the vault service under `request`; outputs and their reports published here."""
    options.check()
    items = plan_restore(sources, output, force=options.force)
    params = {**_restore_params(items, output, options), "request": request}
    files = _upload(items)
    with Staging(Path(output).parent) as staging:  # beside the output: a refusal leaves no empty folder
        assert staging.folder is not None
        received = staging.folder / JOB_FOLDER
        result = _run_job(client, "restore", params, files, received)
        reports = []
        for item, got in zip(items, result["files"], strict=True):
            _stage(staging, received / got["output"], item.target)
            reports.append(_local_report(got, item))
        staging.publish()
    for report in reports:
        atomic_write_bytes(report_path(Path(report.output)), json.dumps(report.as_dict(), indent=2).encode())
        if on_file is not None:
            on_file(report)
    return CaseReport(
        mode=result["mode"],
        case_id=result["case_id"],
        request=result["request"],
        audit_seq=result["audit_seq"],
        files=reports,
        approvals=result["approvals"],
    )


def _local_report(got: Mapping[str, Any], item: Item) -> RestoreReport:
    fields = {**got, "input": str(item.source), "output": str(item.target)}
    if fields.get("label_box") is not None:
        fields["label_box"] = tuple(fields["label_box"])
    return RestoreReport(**fields)
