"""Jobs run by the vault service: plan here, compute where the keys are, publish here; restore's side.

The workstation plans the run exactly as a local one (targets, refusal of existing outputs), sends the
files under numbered names with the options (`ifadit.pipeline.service_jobs` runs them in the service),
receives the outputs with their service-signed manifests into a hidden staging folder and moves them
into place only once the whole job has come back, so a refusal or a broken connection leaves nothing
under the output names. No key material, condition or signing key ever reaches this process. The job
plumbing and the restore need no image, model or database code (a restore through the service starts
fast); `ifadit.pipeline.remote_anonymize` sends an anonymize run the same way.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from ifadit.errors import InputError
from ifadit.media.files import atomic_write_bytes
from ifadit.media.manifest import sidecar_path
from ifadit.pipeline.inputs import Item
from ifadit.pipeline.restore_plan import (
    RESTORE_FIELDS,
    CaseReport,
    RestoreOptions,
    RestoreReport,
    plan_restore,
    report_path,
)
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


def single_output(items: Sequence[Item], output: Path) -> str | None:
    """The job's output name when the run writes one named file (its suffix chooses the format)."""
    if len(items) == 1 and items[0].target == Path(output):
        return f"00000_output{Path(output).suffix}"
    return None


def upload(items: Sequence[Item]) -> dict[str, Path]:
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


def local_names(text: str, files: Mapping[str, Path]) -> str:
    """A message from the service with each job file name replaced by this machine's path."""
    for name in sorted(files, key=len, reverse=True):  # a longer name may contain a shorter one
        text = text.replace(name, str(files[name]))
    return text


def run_job(
    client: JobClient, kind: str, params: Mapping[str, Any], files: Mapping[str, Path], into: Path
) -> dict[str, Any]:
    """The job's result; an error from the service names this machine's files, not their job names."""
    try:
        return client.run_job(kind, params, files, into)
    except Exception as exc:
        if exc.args and isinstance(exc.args[0], str):
            exc.args = (local_names(exc.args[0], files), *exc.args[1:])
        raise


def stage(staging: Staging, received: Path, target: Path) -> None:
    """Move a received output (and its sidecar) to its staged place for `target`."""
    staged = staging.path_for(target)
    os.replace(received, staged)
    if sidecar_path(received).exists():
        os.replace(sidecar_path(received), sidecar_path(staged))


def _restore_params(items: Sequence[Item], output: Path, options: RestoreOptions) -> dict[str, Any]:
    return {
        "options": {name: getattr(options, name) for name in RESTORE_FIELDS},
        "files": [job_name(index, item.source) for index, item in enumerate(items)],
        "single_output": single_output(items, output),
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
        result = run_job(client, "restore-check", _restore_params(items, output, options), upload(items),
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
    files = upload(items)
    with Staging(Path(output).parent) as staging:  # beside the output: a refusal leaves no empty folder
        assert staging.folder is not None
        received = staging.folder / JOB_FOLDER
        result = run_job(client, "restore", params, files, received)
        reports = []
        for item, got in zip(items, result["files"], strict=True):
            stage(staging, received / got["output"], item.target)
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
