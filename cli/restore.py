"""`ifadit restore` (files and folders, one request per batch), `ifadit requests list|show|approve|deny|cancel`,
and `ifadit approve` (alias of `requests approve`): audited restores of faces under approved requests.

Through the vault service a restore needs only planning, hashing and HTTP: this module imports no image,
model or database code at the top; the local-vault path imports `ifadit.pipeline.restore` where it runs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from ifadit.pipeline.remote import check_restorable, restore_remote
from ifadit.pipeline.restore_plan import (
    CaseReport,
    RequestPending,
    RestoreOptions,
    RestoreReport,
    request_files,
    request_key,
)
from ifadit_cli.options import VaultArgs, emit, json_option, short_time, table, usage_errors, vault_options
from keyvault import PermissionDenied, RequestInfo
from keyvault.records import OPEN_STATES, REQUEST_STATES, inputs_digest
from keyvault.service.api import NewRequest

if TYPE_CHECKING:
    from keyvault.service.client import VaultClient

REQUEST_COLUMNS = (
    "REQUEST",
    "STATE",
    "MODE",
    "FILES",
    "APPROVALS",
    "CASE",
    "REQUESTER",
    "FILED (UTC)",
    "REASON",
)


def _request_row(request: RequestInfo) -> tuple[str, ...]:
    return (
        request.handle,
        request.state,
        request.mode or "-",
        str(len(request.files)),
        f"{request.approvals_counted}/{request.approvals_required}",
        request.case_id,
        request.requester,
        short_time(request.created),
        request.reason,
    )


def _request_text(request: RequestInfo) -> str:
    lines = [
        f"request  {request.handle}",
        f"state    {request.state}",
        f"mode     {request.mode or '- (filed before modes were recorded)'}",
        f"case     {request.case_id}",
        f"by       {request.requester} at {short_time(request.created)}",
        f"reason   {request.reason}",
        f"inputs   {len(request.files)} files, digest {request.input_digest}",
        f"key      {request.key_handle or '-'}",
        f"approved {request.approvals_counted} of {request.approvals_required} needed",
    ]
    if request.closed_by:
        lines.append(f"{request.state} by {request.closed_by}: {request.closed_reason}")
    lines += [f"  file {file.name}  sha256 {file.sha256}" for file in request.files]
    for approval in request.approvals:
        lines.append(
            f"  approved by {approval.approver} at {short_time(approval.created)} ({approval.mode or '-'}), "
            f"expires {short_time(approval.expires)}, used {short_time(approval.used)}"
        )
    return "\n".join(lines)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _file_line(report: RestoreReport) -> str:
    return f"restored {report.faces_restored} of {report.faces_listed} faces ({report.mode}): {report.input}"


def _restore_text(report: CaseReport) -> str:
    outputs = report.files[0].output if len(report.files) == 1 else _count(len(report.files), "file")
    return (
        f"restored {_count(report.faces_restored, 'face')} ({report.mode}) into {outputs} under request "
        f"{report.request or '- (policy: no approval)'}; audit entry {report.audit_seq}; "
        f"a report beside each output (*.restore.json)"
    )


def _pending(exc: RequestPending, as_json: bool) -> NoReturn:
    """Exit 3: the request awaits approval; with --json its JSON on stdout, always the error line on stderr."""
    if as_json:
        emit(exc.request, True, _request_text)
    raise exc


def _file_request(
    vault_args: VaultArgs, sources: list[Path], output: Path, options: RestoreOptions
) -> RequestInfo:
    """`--request-only`: on a local vault after checking every file against it; through the vault service
    after the service checked them the same way, with the files' names and SHA-256s computed here."""
    with usage_errors():
        if not vault_args.remote:
            from ifadit.pipeline.restore import request_only

            with vault_args.open() as vault:
                return request_only(vault, sources, output, options)
        files = request_files(sources, output, options)
        new = NewRequest(
            case=options.case,
            reason=options.reason,
            files=tuple(files),
            mode=options.mode,
            key=request_key(files, options),
        )
        with vault_args.client() as client:
            check_restorable(client, sources, output, options)
            return client.file_request(new)


def _request_through_service(
    api: VaultClient,
    sources: list[Path],
    output: Path,
    options: RestoreOptions,
    request_id: str | None,
    as_json: bool,
) -> str | None:
    """The request a restore through the vault service runs under: the one named, else the investigator's
    open one for these files and mode, else a new one; None when the policy needs no approval. Unless
    the request is approved already, the service first checks the files as a restore would (so a revoked
    key or a file without manifest is refused before anyone waits). Exit 3 while it awaits its quorum
    (with --json, the request on stdout). The service checks the request again against the files
    themselves when it runs the restore."""
    with usage_errors():
        files = request_files(sources, output, options)
    if not api.policy().require_approval:
        return None
    digest = inputs_digest(file.sha256 for file in files)
    found = (
        api.show_request(request_id)
        if request_id is not None
        else api.find_request(options.case, digest, options.mode)
    )
    if found is not None:
        _check_usable(found, digest, options)
    if found is None or found.approvals_counted < found.approvals_required:
        # refused as a restore would be (a revoked key, no manifest ...) before anyone waits
        with usage_errors():
            check_restorable(api, sources, output, options)
    if found is None:
        with usage_errors():
            key = request_key(files, options)
        found = api.file_request(
            NewRequest(
                case=options.case, reason=options.reason, files=tuple(files), mode=options.mode, key=key
            )
        )
    if found.approvals_counted < found.approvals_required:
        _pending(RequestPending(found), as_json)
    return found.handle


def _check_usable(found: RequestInfo, digest: str, options: RestoreOptions) -> None:
    """`PermissionDenied` for a request that was closed, or filed for other inputs or another mode."""
    if found.state not in OPEN_STATES:
        closed = f" by {found.closed_by}" if found.closed_by else ""
        raise PermissionDenied(
            f"request {found.handle} was {found.state}{closed}: restore refused", hint="file a new request"
        )
    if (found.input_digest, found.mode) != (digest, options.mode):
        raise PermissionDenied(
            f"request {found.handle} was filed for {'an' if found.mode == 'exact' else 'a'} {found.mode} restore "
            "of other inputs or in another mode",
            hint="`ifadit requests show` lists its files; file a new request for these",
        )


def _restore_through_service(
    vault_args: VaultArgs,
    sources: list[Path],
    output: Path,
    options: RestoreOptions,
    request_id: str | None,
    as_json: bool,
) -> CaseReport:
    """The whole restore through the vault service: the request as above, then the files go there and
    the restored files with their reports come back (the key material stays in the service)."""

    with vault_args.client() as client:
        handle = _request_through_service(client, sources, output, options, request_id, as_json)
        with usage_errors():
            return restore_remote(
                client,
                sources,
                output,
                options,
                request=handle,
                on_file=lambda done: click.echo(_file_line(done), err=True),
            )


@click.command("restore")
@click.argument("sources", metavar="INPUT...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder to restore into (mirrors the inputs; created), or the file to write for one input "
    "(a video restores to .mkv losslessly, or .mp4).",
)
@vault_options
@click.option("--case", "case_id", required=True, help="Case the restore is for (must own the keys).")
@click.option(
    "--reason", required=True, help="Why the identities are needed (kept in the request and the audit log)."
)
@click.option(
    "--request",
    "request_id",
    default=None,
    show_default="your open request for exactly these files and mode, else a new one",
    help="Restore under this approved request (it must list these files and this mode).",
)
@click.option(
    "--key",
    "key_handle",
    default=None,
    show_default="the key each manifest names",
    help="Key to try on copies that lost their manifest (a wrong key gives a wrong face, not an error).",
)
@click.option(
    "--exact",
    is_flag=True,
    default=False,
    show_default=True,
    help="Unseal the original face regions (--seal-original outputs) bit for bit instead of running "
    "the model backwards (a model restore is an investigative lead and is labelled as one).",
)
@click.option(
    "--request-only",
    is_flag=True,
    default=False,
    show_default=True,
    help="Only file one restore request for all the inputs and print its id.",
)
@click.option(
    "--force",
    is_flag=True,
    default=False,
    show_default=True,
    help="Overwrite outputs that already exist (without it, nothing is restored when one exists).",
)
@click.option(
    "--backend",
    default="ifadit",
    show_default=True,
    help="Reversible backend for copies without manifest (a manifest names its own).",
)
@click.option(
    "--mask-scale",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    show_default="the manifest's; without one, 1.3, the anonymize default of a reversible backend",
    help="Model restore: size of the pasted face ellipse. The manifest records the one the output was "
    "anonymized with; give it for a copy that lost its manifest.",
)
@json_option
def restore_command(
    sources: tuple[Path, ...],
    output: Path,
    vault_args: VaultArgs,
    case_id: str,
    reason: str,
    request_id: str | None,
    key_handle: str | None,
    exact: bool,
    request_only: bool,
    force: bool,
    backend: str,
    mask_scale: float | None,
    as_json: bool,
) -> None:
    """Restore the faces of anonymized files and folders (recursive) as one case; investigator role, audited.

    When the vault's policy requires approval, the first call files ONE request listing every file (name
    and SHA-256) and the mode, prints the error naming it and exits with status 3 (with --json, the
    request on stdout); once the quorum of approvers has run `ifadit requests approve REQUEST_ID`, the
    same command restores every file (once: requests are single-use, approvals expire). Progress in faces
    and a line per file go to stderr; outputs appear together after the audit entry, each with a report.

    Against a vault service (--vault https://...) the request is filed, found or named as above, then
    the files are sent to the service, which checks them against the request, restores them with key
    material that never leaves it, and sends the restored files and their reports back.

    \b
    Example:
      ifadit restore released/ -o restored/ --case C-17 --reason "warrant 2026/114" --exact
    """
    options = RestoreOptions(
        case=case_id,
        reason=reason,
        key=key_handle,
        exact=exact,
        backend=backend,
        mask_scale=mask_scale,
        force=force,
    )
    if request_only:
        request = _file_request(vault_args, list(sources), output, options)
        emit(request, as_json, lambda r: r.handle)
        click.echo(f"an approver runs `ifadit requests approve {request.handle}`", err=True)
        return
    if vault_args.remote:
        report = _restore_through_service(vault_args, list(sources), output, options, request_id, as_json)
    else:
        report = _restore_locally(vault_args, list(sources), output, options, request_id, as_json)
    emit(report.as_dict() if as_json else report, as_json, _restore_text)
    if report.mode == "model" and not as_json:
        from ifadit.backends.measured import restore_caveat

        click.echo(restore_caveat(report.files[0].measured), err=True)  # the restoring model's own card


def _restore_locally(
    vault_args: VaultArgs,
    sources: list[Path],
    output: Path,
    options: RestoreOptions,
    request_id: str | None,
    as_json: bool,
) -> CaseReport:
    from ifadit.pipeline.restore import restore_paths

    with vault_args.open() as vault, usage_errors():
        try:
            return restore_paths(
                vault,
                sources,
                output,
                options,
                request=request_id,
                progress=sys.stderr.isatty(),
                on_file=lambda done: click.echo(_file_line(done), err=True),
            )
        except RequestPending as exc:
            _pending(exc, as_json)


@click.group("requests")
def requests_group() -> None:
    """List, show, approve, deny and cancel restore requests (on a local vault or through the vault service).

    \b
    Example:
      ifadit requests list --state pending
    """


@requests_group.command("list")
@vault_options
@click.option("--case", "case_id", default=None, show_default="all cases", help="Only requests of this case.")
@click.option(
    "--state",
    type=click.Choice(REQUEST_STATES),
    default=None,
    show_default="all states",
    help="Only requests in this state.",
)
@json_option
def requests_list(vault_args: VaultArgs, case_id: str | None, state: str | None, as_json: bool) -> None:
    """List restore requests, newest first (investigator, approver, admin or auditor).

    \b
    Example:
      ifadit requests list --case C-17 --json
    """
    with vault_args.api() as api:
        found = api.list_requests(case_id, state)
    emit(found, as_json, lambda rs: table(REQUEST_COLUMNS, [_request_row(r) for r in rs]))


@requests_group.command("show")
@click.argument("request_id", metavar="REQUEST_ID")
@vault_options
@json_option
def requests_show(request_id: str, vault_args: VaultArgs, as_json: bool) -> None:
    """Show one restore request: its files, mode, reason and approvals.

    \b
    Example:
      ifadit requests show rq_5c1e...
    """
    with vault_args.api() as api:
        request = api.show_request(request_id)
    emit(request, as_json, _request_text)


@requests_group.command("approve")
@click.argument("request_id", metavar="REQUEST_ID")
@vault_options
@json_option
def requests_approve(request_id: str, vault_args: VaultArgs, as_json: bool) -> None:
    """Approve another user's restore request (approver role; never the requester; audited).

    The approval names the request's files (by their digest) and its mode; the request is approved once
    the policy's quorum of distinct approvers agreed (`vault policy --approvals T`). Check the files, mode
    and reason first with `ifadit requests show`.

    \b
    Example:
      ifadit requests approve rq_5c1e...
    """
    with vault_args.api() as api:
        request = api.approve_request(request_id)
    emit(
        request,
        as_json,
        lambda r: (
            f"approved {r.handle} ({r.mode} restore of {_count(len(r.files), 'file')}, case {r.case_id}, requested by "
            f"{r.requester}): {r.approvals_counted} of {r.approvals_required} approvals, now {r.state}"
        ),
    )


def _close_command(verb: str, role_text: str) -> click.Command:
    @click.command(verb)
    @click.argument("request_id", metavar="REQUEST_ID")
    @vault_options
    @click.option("--reason", required=True, help="Why (kept in the request and the audit log).")
    @json_option
    def command(request_id: str, vault_args: VaultArgs, reason: str, as_json: bool) -> None:
        with usage_errors(), vault_args.api() as api:
            request = api.close_request(verb, request_id, reason)
        emit(request, as_json, lambda r: f"{r.state} {r.handle} (case {r.case_id}): {reason}")

    command.help = (
        f"{role_text} It can no longer be approved or used; audited with the reason.\n\n"
        f'\b\nExample:\n  ifadit requests {verb} rq_5c1e... --reason "warrant does not cover cam2"'
    )
    return command


requests_group.add_command(
    _close_command("deny", "Refuse another user's open restore request (approver role).")
)
requests_group.add_command(
    _close_command("cancel", "Withdraw your own open restore request (the requester).")
)

approve_command = click.Command(
    "approve",
    params=requests_approve.params,
    callback=requests_approve.callback,
    help="Approve a restore request (alias of `ifadit requests approve`).\n\n\b\nExample:\n  ifadit approve rq_5c1e...",
)


def register(group: click.Group) -> None:
    """Add `restore`, `approve` and `requests` to the root command."""
    for command in (restore_command, approve_command, requests_group):
        group.add_command(command)
