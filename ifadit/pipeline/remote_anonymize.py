"""Anonymize through the vault service: `anonymize_paths` planned here, computed where the keys are.

One job, one audit entry; the outputs come back with service-signed manifests and are published here
together with the run index (`ifadit.pipeline.remote` carries the job).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ifadit.errors import InputError
from ifadit.pipeline.anonymize import AnonymizeOptions, ItemResult
from ifadit.pipeline.batch import RunReport
from ifadit.pipeline.inputs import Item, plan_items, refuse_existing
from ifadit.pipeline.remote import (
    JOB_FOLDER,
    JobClient,
    job_name,
    local_names,
    run_job,
    single_output,
    stage,
    upload,
)
from ifadit.pipeline.run_index import RUN_INDEX_NAME, RunRecord, append_run, read_runs
from ifadit.pipeline.service_jobs import anonymize_options_to_wire
from ifadit.pipeline.staging import Staging


def _add_replacement_image(files: dict[str, Path], options: AnonymizeOptions) -> str | None:
    """Add `--replaceimg`'s picture to the job's files; its name in the job (None without one)."""
    image = dict(options.backend_options).get("image")
    if image is None:
        return None
    name = f"replaceimg/{Path(image).name}"
    files[name] = Path(image)
    return name


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
    files = upload(items)
    params = {
        "options": anonymize_options_to_wire(options, _add_replacement_image(files, options)),
        "files": [job_name(index, item.source) for index, item in enumerate(items)],
        "single_output": single_output(items, output),
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
            result = run_job(client, "anonymize", params, files, received)
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
            stage(staging, received / got["output"], item.target)
        results.append(
            ItemResult(
                source=item.source,
                target=item.target,
                kind=item.kind,
                faces=got["faces"],
                input_sha256=got["input_sha256"],
                output_sha256=got["output_sha256"],
                error=None if got["error"] is None else local_names(got["error"], files),
                exit_code=got["exit_code"],
            )
        )
    return results
