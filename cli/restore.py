"""`ifadit restore`, `ifadit approve`, `ifadit requests list|show`: audited, approved restores of faces."""

from __future__ import annotations

from pathlib import Path

import click
from ifadit_cli.options import VaultArgs, emit, json_option, short_time, table, usage_errors, vault_options

from ifadit.pipeline import restore as restoring
from ifadit.pipeline.restore import RestoreOptions, RestoreReport
from keyvault import RequestInfo, access

REQUEST_STATES = ("pending", "approved", "used")


REQUEST_COLUMNS = ("REQUEST", "STATE", "CASE", "REQUESTER", "FILED (UTC)", "REASON")


def _request_row(request: RequestInfo) -> tuple[str, ...]:
    return (
        request.handle,
        request.state,
        request.case_id,
        request.requester,
        short_time(request.created),
        request.reason,
    )


def _request_text(request: RequestInfo) -> str:
    lines = [
        f"request  {request.handle}",
        f"state    {request.state}",
        f"case     {request.case_id}",
        f"by       {request.requester} at {short_time(request.created)}",
        f"reason   {request.reason}",
        f"input    sha256 {request.input_digest}",
        f"key      {request.key_handle or '-'}",
    ]
    for approval in request.approvals:
        lines.append(
            f"  approved by {approval.approver} at {short_time(approval.created)}, "
            f"expires {short_time(approval.expires)}, used {short_time(approval.used)}"
        )
    return "\n".join(lines)


def _restore_text(report: RestoreReport) -> str:
    return (
        f"restored {report.faces_restored} of {report.faces_listed} faces ({report.mode}) into {report.output} "
        f"with key {report.key_handle} v{report.key_version}; audit entry {report.audit_seq}; "
        f"report {report.output}.restore.json"
    )


@click.command("restore")
@click.argument("source", metavar="INPUT", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Restored file to write (a video restores to .mkv losslessly, or .mp4).",
)
@vault_options
@click.option("--case", "case_id", required=True, help="Case the restore is for (must own the key).")
@click.option(
    "--reason", required=True, help="Why the identity is needed (kept in the request and the audit log)."
)
@click.option(
    "--key",
    "key_handle",
    default=None,
    show_default="the key the manifest names",
    help="Key to try on a copy that lost its manifest (a wrong key gives a wrong face, not an error).",
)
@click.option(
    "--exact",
    is_flag=True,
    default=False,
    show_default=True,
    help="Unseal the original face regions (--seal-original outputs) bit for bit instead of running "
    "the model backwards.",
)
@click.option(
    "--request-only",
    is_flag=True,
    default=False,
    show_default=True,
    help="Only file a restore request for an approver and print its id.",
)
@click.option(
    "--backend",
    default="ifadit",
    show_default=True,
    help="Reversible backend for a copy without manifest (a manifest names its own).",
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
    source: Path,
    output: Path,
    vault_args: VaultArgs,
    case_id: str,
    reason: str,
    key_handle: str | None,
    exact: bool,
    request_only: bool,
    backend: str,
    mask_scale: float | None,
    as_json: bool,
) -> None:
    """Restore the faces of an anonymized output; investigator role, audited.

    When the vault's policy requires an approval, the first call files a request, prints its id and
    exits with status 3; after another user runs `ifadit approve REQUEST_ID`, the same command restores
    (once: approvals are single-use and expire). A report JSON is written next to the output.

    \b
    Example:
      ifadit restore released/cam1.png -o cam1.restored.png --case C-17 --reason "warrant 2026/114" --exact
    """
    options = RestoreOptions(
        case=case_id, reason=reason, key=key_handle, exact=exact, backend=backend, mask_scale=mask_scale
    )
    with vault_args.open() as vault, usage_errors():
        if request_only:
            request = restoring.request_only(vault, source, options)
            emit(request, as_json, lambda r: r.handle)
            click.echo(f"an approver runs `ifadit approve {request.handle}`", err=True)
            return
        report = restoring.restore_path(vault, source, output, options)
    emit(report.as_dict() if as_json else report, as_json, _restore_text)
    if report.mode == "model" and not as_json:
        from ifadit.backends.ifadit import default_model_dir
        from ifadit.backends.measured import restore_caveat

        click.echo(restore_caveat(default_model_dir(), report.model_id), err=True)


@click.command("approve")
@click.argument("request_id", metavar="REQUEST_ID")
@vault_options
@json_option
def approve_command(request_id: str, vault_args: VaultArgs, as_json: bool) -> None:
    """Approve another user's restore request (approver role; single-use, expires per policy).

    \b
    Example:
      ifadit approve rq_5c1e...
    """
    with vault_args.open() as vault:
        request = access.approve(vault, request_id)
    emit(request, as_json, lambda r: f"approved {r.handle} (case {r.case_id}, requested by {r.requester})")


@click.group("requests")
def requests_group() -> None:
    """List and show restore requests and their approvals.

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
    with vault_args.open() as vault:
        found = access.list_requests(vault, case=case_id, state=state)
    emit(found, as_json, lambda rs: table(REQUEST_COLUMNS, [_request_row(r) for r in rs]))


@requests_group.command("show")
@click.argument("request_id", metavar="REQUEST_ID")
@vault_options
@json_option
def requests_show(request_id: str, vault_args: VaultArgs, as_json: bool) -> None:
    """Show one restore request with its approvals.

    \b
    Example:
      ifadit requests show rq_5c1e...
    """
    with vault_args.open() as vault:
        request = access.show_request(vault, request_id)
    emit(request, as_json, _request_text)


def register(group: click.Group) -> None:
    """Add `restore`, `approve` and `requests` to the root command."""
    for command in (restore_command, approve_command, requests_group):
        group.add_command(command)
