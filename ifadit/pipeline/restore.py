"""Restore a case: one request, one approval quorum and one audit entry for a batch of anonymized files.

The steps (`restore_paths`):
  1. plan: expand the inputs (files and folders, recursively) into outputs under the output folder (or one
     output file for one input); refuse outputs that exist unless `force` (nothing is written then);
  2. inspect every input (`ifadit.pipeline.restore_item`): manifest, signature, pixels, key version, mode;
     each backend is built once for the whole batch;
  3. when the vault's policy requires approval: use the request named (`request`), else the investigator's
     open request for exactly these files and mode (an approved one first), else file one listing every
     file by name and SHA-256; a request still short of its quorum stops here with `RequestPending` (exit 3);
  4. in ONE vault action: consume the request, unseal each key version once, compute every restored file
     into a staging folder (progress in faces; a line per file as it finishes), record the audit entry (the
     inputs by their digest, the restored outputs only by a keyed digest: they are original content);
  5. only after that entry has committed, move every output into place and write each one's restoration
     report (`<output>.restore.json`: a model restore's notice and the model card's measured rates).
A failure in step 2 is audited too (outcome failed/refused) and restores nothing.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ifadit.backends.base import Backend
from ifadit.errors import InputError
from ifadit.media.digests import file_sha256
from ifadit.media.files import atomic_write_bytes
from ifadit.pipeline.inputs import Item
from ifadit.pipeline.outputs import keyed_list_digest
from ifadit.pipeline.restore_item import Inspection, inspect_input, restore_into
from ifadit.pipeline.restore_label import MODEL_NOTICE, Box
from ifadit.pipeline.restore_plan import (
    CaseReport,
    OnFile,
    RequestPending,
    RestoreOptions,
    RestoreReport,
    plan_restore,
    report_path,
)
from ifadit.pipeline.staging import Staging
from keyvault import PermissionDenied, RequestInfo, UnsealedKey, Vault, access, keys, ledger
from keyvault.records import OPEN_STATES, ApprovalInfo, RequestFile, inputs_digest
from keyvault.vault import Action

# ---------------------------------------------------------------- steps 1-3: plan, inspect, request


def inspect_items(vault: Vault, items: Sequence[Item], options: RestoreOptions) -> list[Inspection]:
    """Step 2 for every item as the investigator, and their keys (this case's, active) checked before any
    request is filed; a refusal or failure is audited (a success adds no entry)."""
    options.check()
    models: dict[str, Backend] = {}  # one backend per name for the whole batch
    with vault.action(
        "restore", role="investigator", case=options.case, reason=options.reason, record=False
    ) as act:
        inspections = [inspect_input(vault, item.source, options, models) for item in items]
        keys.check_restorable(act, (i.key_handle for i in inspections), case=options.case)
        return inspections


def request_files(items: Sequence[Item], inspections: Sequence[Inspection]) -> list[RequestFile]:
    """The files a request lists: each input's path as given, and its SHA-256."""
    return [
        RequestFile(name=str(item.source), sha256=inspection.input_sha256)
        for item, inspection in zip(items, inspections, strict=True)
    ]


def _case_key(inspections: Sequence[Inspection]) -> str | None:
    handles = {inspection.key_handle for inspection in inspections}
    return handles.pop() if len(handles) == 1 else None


def file_request(
    vault: Vault, items: Sequence[Item], inspections: Sequence[Inspection], options: RestoreOptions
) -> RequestInfo:
    """File a new request for the batch (`--request-only`, or step 3 when none is open)."""
    return access.request_restore(
        vault,
        case=options.case,
        reason=options.reason,
        files=request_files(items, inspections),
        mode=options.mode,
        key=_case_key(inspections),
    )


def resolve_request(
    vault: Vault,
    items: Sequence[Item],
    inspections: Sequence[Inspection],
    options: RestoreOptions,
    request: str | None,
) -> str | None:
    """Step 3: the request this batch restores under (None when the policy needs none), or `RequestPending`."""
    if not vault.policy().require_approval:
        return None
    digest = inputs_digest(inspection.input_sha256 for inspection in inspections)
    if request is not None:
        found = access.show_request(vault, request)
        closed = found.state not in OPEN_STATES
        if closed or found.mode != options.mode or found.input_digest != digest:
            return request  # refused by name inside the restore's action
    else:
        found = access.find_request(vault, case=options.case, input_digest=digest, mode=options.mode) or (
            file_request(vault, items, inspections, options)
        )
    if found.approvals_counted >= found.approvals_required:
        return found.handle
    raise RequestPending(found)


# ---------------------------------------------------------------- steps 4-5: restore, publish, report


def _key_for(
    vault: Vault,
    act: Action,
    inspection: Inspection,
    unsealed: dict[tuple[str, int | None], UnsealedKey],
    options: RestoreOptions,
    use: dict[str, str | None],
) -> UnsealedKey:
    """The key version `inspection` names, unsealed once per batch inside the restore's action `act`.

    `use` (request, inputs' digest, mode) is what the request must match; it is consumed with the first key.
    """
    wanted = (inspection.key_handle, inspection.key_version)
    if wanted not in unsealed:
        key = keys.unseal_for_use(
            vault, inspection.key_handle, purpose="restore", version=inspection.key_version, action=act, **use
        )
        if key.case_id != options.case:
            raise PermissionDenied(f"key {key.handle} does not belong to case {options.case}")
        unsealed[wanted] = key
    return unsealed[wanted]


def _file_report(
    item: Item,
    inspection: Inspection,
    key: UnsealedKey,
    options: RestoreOptions,
    outcome: tuple[int, Box | None, str],
    seq: int,
) -> RestoreReport:
    count, box, output_sha256 = outcome
    manifest, backend = inspection.manifest, inspection.model
    model_id = manifest.model_id if manifest else getattr(backend, "model_id", None)
    return RestoreReport(
        input=str(item.source),
        output=str(item.target),
        mode=inspection.mode,
        case_id=options.case,
        reason=options.reason,
        input_sha256=inspection.input_sha256,
        output_sha256=output_sha256,
        key_handle=key.handle,
        key_version=key.version,
        backend=inspection.backend,
        model_id=model_id,
        model_sha256=manifest.model_sha256 if manifest else getattr(backend, "model_sha256", None),
        faces_listed=len(manifest.faces) if manifest else count,
        faces_restored=count,
        audit_seq=seq,
        anonymize_audit_seq=manifest.audit_seq if manifest else None,
        request=None,
        approvals=[],
        notice=MODEL_NOTICE if inspection.mode == "model" else None,
        label_box=box,
        measured=_measured(model_id) if inspection.mode == "model" else None,
    )


def _measured(model_id: str | None) -> dict[str, Any] | None:
    from ifadit.backends.ifadit import default_model_dir  # the shipped model's card (loads torch: lazily)
    from ifadit.backends.measured import measured_rates

    return measured_rates(default_model_dir(), model_id)


def _faces_total(inspections: Sequence[Inspection]) -> int | None:
    listed = [len(i.manifest.faces) if i.manifest else None for i in inspections]
    return None if None in listed else sum(count for count in listed if count is not None)


def _restore_batch(
    vault: Vault,
    items: Sequence[Item],
    inspections: Sequence[Inspection],
    options: RestoreOptions,
    request: str | None,
    staging: Staging,
    *,
    progress: bool,
    on_file: OnFile | None,
) -> tuple[int, list[RestoreReport], list[dict[str, Any]]]:
    """Step 4: one audited action restoring every item into `staging`; (audit seq, reports, approvals)."""
    digest = inputs_digest(inspection.input_sha256 for inspection in inspections)
    backends = sorted({inspection.backend for inspection in inspections})
    details = {"mode": options.mode, "request": request, "backend": ",".join(backends), "files": len(items)}
    use: dict[str, str | None] = {"request": request, "input_digest": digest, "mode": options.mode}
    with (
        vault.action(
            "restore",
            role="investigator",
            key=_case_key(inspections),
            case=options.case,
            reason=options.reason,
            digests={"input": digest},
            details=details,
        ) as act,
        tqdm(
            total=_faces_total(inspections),
            disable=not progress,
            file=sys.stderr,
            unit="face",
            desc="restore",
        ) as bar,
    ):
        seq = ledger.next_seq(act.session)
        unsealed: dict[tuple[str, int | None], UnsealedKey] = {}
        reports = []
        for item, inspection in zip(items, inspections, strict=True):
            key = _key_for(vault, act, inspection, unsealed, options, use)
            staged = staging.path_for(item.target)
            count, box = restore_into(staged, inspection, key, options, on_faces=bar.update)
            report = _file_report(item, inspection, key, options, (count, box, file_sha256(staged)), seq)
            reports.append(report)
            if on_file is not None:
                with tqdm.external_write_mode(file=sys.stderr):
                    on_file(report)
        act.digests["output"] = keyed_list_digest(
            vault, [r.output_sha256 for r in reports]
        )  # keyed: originals
        act.details["faces"] = sum(r.faces_restored for r in reports)
        act.details["keys"] = sorted(f"{key.handle} v{key.version}" for key in unsealed.values())
        # read in the same transaction: a later read could fail after the outputs are published
        approvals = access.request_in(vault, act.session, request).approvals if request else ()
    return seq, reports, [_approval_dict(approval) for approval in approvals]


def _approval_dict(approval: ApprovalInfo) -> dict[str, Any]:
    return {
        "approver": approval.approver,
        "approved": approval.created.isoformat(),
        "used": approval.used.isoformat() if approval.used else None,
        "mode": approval.mode,
    }


def restore_paths(
    vault: Vault,
    sources: Sequence[Path],
    output: Path,
    options: RestoreOptions,
    *,
    request: str | None = None,
    progress: bool = False,
    on_file: OnFile | None = None,
) -> CaseReport:
    """Restore every file of `sources` (files and folders) into `output` (steps 1-5) under one request.

    `RequestPending` (exit 3) names the request an approver must approve; `progress` shows a bar in
    faces on stderr; `on_file` is told each file's report as its pixels are done (before publishing).
    """
    items = plan_restore(sources, output, force=options.force)  # 1
    inspections = inspect_items(vault, items, options)  # 2
    for item, inspection in zip(items, inspections, strict=True):
        if item.target.resolve() == inspection.source.resolve():
            raise InputError(f"{item.target}: the restored output would overwrite its input")
    handle = resolve_request(vault, items, inspections, options, request)  # 3
    with Staging(Path(output).parent) as staging:  # beside the output: a refusal leaves no empty folder
        seq, reports, approvals = _restore_batch(
            vault, items, inspections, options, handle, staging, progress=progress, on_file=on_file
        )  # 4
        staging.publish()  # 5
    final = [_with_request(report, handle, approvals) for report in reports]
    for report in final:
        atomic_write_bytes(report_path(Path(report.output)), json.dumps(report.as_dict(), indent=2).encode())
    return CaseReport(
        mode=options.mode,
        case_id=options.case,
        request=handle,
        audit_seq=seq,
        files=final,
        approvals=approvals,
    )


def _with_request(
    report: RestoreReport, request: str | None, approvals: list[dict[str, Any]]
) -> RestoreReport:
    return RestoreReport(**{**asdict(report), "request": request, "approvals": approvals})


def restore_path(
    vault: Vault, source: Path, target: Path, options: RestoreOptions, *, request: str | None = None
) -> RestoreReport:
    """Restore one file `source` into the file `target` (`restore_paths` for a batch of one)."""
    target = Path(target)
    if target.is_dir():
        raise InputError(f"{target} is a folder: restore_path writes one file", hint="use restore_paths")
    return restore_paths(vault, [Path(source)], target, options, request=request).files[0]


def request_only(vault: Vault, sources: Sequence[Path], output: Path, options: RestoreOptions) -> RequestInfo:
    """File a new restore request for the batch without restoring (`--request-only`)."""
    items = plan_restore(sources, output, force=True)
    return file_request(vault, items, inspect_items(vault, items, options), options)
