"""`ifadit admin-actions list|show|approve|deny` and `ifadit keys cancel-destroy`: the two-person rule.

Once a vault has two enabled admins, `users add`, `vault policy` (a change) and `keys destroy` file an
admin action (exit 3, naming `aa_...`); another admin approves it here, and the filer re-runs the same
command with `--action aa_...` (``keyvault.admin_actions``). Every command goes through
``VaultArgs.api()``: the library on a local vault, or the vault service, which runs the same library
as the token's user, so the two-person rule holds there too.
"""

from __future__ import annotations

import click

from ifadit_cli.options import VaultArgs, emit, json_option, short_time, table, usage_errors, vault_options
from keyvault import admin_actions
from keyvault.records import AdminActionInfo

COLUMNS = ("ACTION", "KIND", "STATE", "FILED BY", "DECIDED BY", "EXPIRES (UTC)", "PARAMETERS")


def action_option(command: click.decorators.FC) -> click.decorators.FC:
    """Add --action (run an admin action another admin approved)."""
    return click.option(
        "--action",
        "admin_action",
        default=None,
        metavar="ID",
        help="Run the admin action aa_... that another admin approved (two-person rule).",
    )(command)


def _row(action: AdminActionInfo) -> tuple[str, ...]:
    return (
        action.handle,
        action.kind,
        action.state,
        action.filer,
        action.decided_by or "-",
        short_time(action.expires),
        admin_actions.canonical(action.params),
    )


def _text(action: AdminActionInfo) -> str:
    return f"{action.handle} ({action.kind}) is {action.state}"


@click.group("admin-actions")
def admin_actions_group() -> None:
    """List, show, approve and deny admin actions filed under the two-person rule.

    \b
    Example:
      ifadit admin-actions approve aa_5c1e... --user bob
    """


@admin_actions_group.command("list")
@vault_options
@click.option(
    "--state", type=click.Choice(admin_actions.STATES), default=None, help="Only actions in this state."
)
@json_option
def actions_list(vault_args: VaultArgs, state: str | None, as_json: bool) -> None:
    """List filed admin actions, newest first (admin or auditor).

    \b
    Example:
      ifadit admin-actions list --state pending
    """
    with vault_args.api() as vault:
        found = vault.list_admin_actions(state)
    emit(found, as_json, lambda rows: table(COLUMNS, [_row(a) for a in rows]))


@admin_actions_group.command("show")
@vault_options
@click.argument("action")
@json_option
def actions_show(vault_args: VaultArgs, action: str, as_json: bool) -> None:
    """Show one admin action: exactly what it does, who filed it and who decided.

    \b
    Example:
      ifadit admin-actions show aa_5c1e...
    """
    with vault_args.api() as vault:
        found = vault.show_admin_action(action)
    emit(
        found,
        as_json,
        lambda a: "\n".join(f"{h.lower()}: {v}" for h, v in zip(COLUMNS, _row(a), strict=True)),
    )


@admin_actions_group.command("approve")
@vault_options
@click.argument("action")
@json_option
def actions_approve(vault_args: VaultArgs, action: str, as_json: bool) -> None:
    """Approve another admin's pending action; its filer then runs it with --action.

    \b
    Example:
      ifadit admin-actions approve aa_5c1e... --user bob
    """
    with vault_args.api() as vault:
        found = vault.decide_admin_action("approve", action)
    emit(found, as_json, _text)


@admin_actions_group.command("deny")
@vault_options
@click.argument("action")
@json_option
def actions_deny(vault_args: VaultArgs, action: str, as_json: bool) -> None:
    """Deny a pending admin action (any admin, its filer included).

    \b
    Example:
      ifadit admin-actions deny aa_5c1e...
    """
    with vault_args.api() as vault:
        found = vault.decide_admin_action("deny", action)
    emit(found, as_json, _text)


@click.command("cancel-destroy")
@vault_options
@click.argument("handle")
@click.option("--reason", required=True, help="Why (kept in the audit log). Required.")
@json_option
def keys_cancel_destroy(vault_args: VaultArgs, handle: str, reason: str, as_json: bool) -> None:
    """Cancel a key's scheduled destruction within its window: the key is revoked again, its material kept.

    \b
    Example:
      ifadit keys cancel-destroy kh_3f9a... --reason "litigation hold"
    """
    with vault_args.api() as vault, usage_errors():
        key = vault.cancel_destroy(handle, reason)
    emit(key, as_json, lambda k: f"{k.handle} is {k.state}")


def register(group: click.Group) -> None:
    """Add the admin-actions group to the root command."""
    group.add_command(admin_actions_group)
