"""`ifadit vault init|policy|upgrade`, `ifadit users add|list|disable`, `ifadit keys issue|list|show|...`.

Every command but `vault init` and `vault upgrade` (which run where the database is) goes through
``VaultArgs.api()``: the library on a local vault, or the vault service for a service URL.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ifadit_cli.admin_actions import action_option, keys_cancel_destroy
from ifadit_cli.options import (
    VaultArgs,
    confirm_option,
    emit,
    json_option,
    new_passphrase,
    passphrase_file_option,
    require_yes,
    short_time,
    table,
    usage_errors,
    vault_options,
    vault_url_option,
)
from ifadit_cli.service_options import hsm_options
from keyvault import (
    DEFAULT_UNLOCK_DELAY_MS,
    KEY_STATES,
    MAX_UNLOCK_DELAY,
    ROLES,
    KdfParams,
    KeyInfo,
    UserInfo,
    Vault,
    access,
    display_url,
    key_fingerprint,
    keys,
    upgrade_vault,
)
from keyvault.service.api import PolicyChange
from keyvault.service.urls import is_service_url

if TYPE_CHECKING:
    from keyvault.service.hsm import HsmConfig

KDF_DEFAULTS = {f.name: f.default for f in dataclasses.fields(KdfParams)}  # the product defaults


KEY_COLUMNS = ("KEY", "STATE", "VERSION", "CASE", "EXPIRES (UTC)", "PURPOSE")
USER_COLUMNS = ("USER", "ROLES", "STATE", "ADDED BY")


def _key_row(key: KeyInfo) -> tuple[str, ...]:
    return (
        key.handle,
        key.state,
        f"v{key.current_version}",
        key.case_id,
        short_time(key.expires),
        key.purpose,
    )


def _key_text(key: KeyInfo) -> str:
    lines = [
        f"key      {key.handle}",
        f"state    {key.state}",
        f"case     {key.case_id}",
        f"purpose  {key.purpose}",
        f"created  {short_time(key.created)} by {key.created_by}",
        f"expires  {short_time(key.expires)}",
    ]
    for version in key.versions:
        lines.append(
            f"  v{version.version}  {version.state:<10}  created {short_time(version.created)}"
            f"  revoked {short_time(version.revoked)}  destroyed {short_time(version.destroyed)}"
        )
    return "\n".join(lines)


def _user_row(user: UserInfo) -> tuple[str, ...]:
    return (
        user.name,
        ",".join(user.roles),
        "disabled" if user.disabled else "active",
        user.created_by or "-",
    )


# ---------------------------------------------------------------- vault


@click.group("vault")
def vault_group() -> None:
    """Create a vault, set its restore policy, upgrade its schema.

    \b
    Example:
      IFADIT_PASSPHRASE=... ifadit vault init --vault lab.sqlite3 --admin alice
    """


@vault_group.command("init")
@vault_url_option
@passphrase_file_option
@click.option(
    "--admin", "admin_name", default="admin", show_default=True, help="Name of the first admin user."
)
@click.option(
    "--kdf-memory-kib",
    type=click.IntRange(8, None),
    default=KDF_DEFAULTS["memory_cost"],
    show_default=True,
    help="Argon2id memory per unlock (KiB): more makes passphrase guessing dearer and unlock slower.",
)
@click.option(
    "--kdf-iterations",
    type=click.IntRange(1, None),
    default=KDF_DEFAULTS["iterations"],
    show_default=True,
    help="Argon2id passes.",
)
@click.option(
    "--kdf-lanes",
    type=click.IntRange(1, None),
    default=KDF_DEFAULTS["lanes"],
    show_default=True,
    help="Argon2id lanes (parallelism).",
)
@click.option(
    "--unlock-delay",
    type=click.FloatRange(0, MAX_UNLOCK_DELAY.total_seconds()),
    default=DEFAULT_UNLOCK_DELAY_MS / 1000,
    show_default=True,
    metavar="SECONDS",
    help="Pause after each failed unlock: slows online passphrase guessing, costs a typo that long.",
)
@click.option(
    "--service",
    is_flag=True,
    default=False,
    show_default=True,
    help="Service mode: no user keyslot wraps the KEK; only `ifadit vault serve`, once unsealed, holds it.",
)
@click.option(
    "--shares",
    type=click.IntRange(2, 255),
    default=5,
    show_default=True,
    help="Service mode: Shamir shares of the KEK printed once, one per custodian.",
)
@click.option(
    "--threshold",
    type=click.IntRange(2, 255),
    default=3,
    show_default=True,
    help="Service mode: how many shares unseal the service (more: safer against collusion, slower to start).",
)
@hsm_options
@json_option
def vault_init(
    vault_url: str | None,
    passphrase_file: Path | None,
    admin_name: str,
    kdf_memory_kib: int,
    kdf_iterations: int,
    kdf_lanes: int,
    unlock_delay: float,
    service: bool,
    shares: int,
    threshold: int,
    hsm: HsmConfig | None,
    as_json: bool,
) -> None:
    """Create a vault: schema, key-encryption key, audit signing key and the first admin.

    The admin's passphrase comes from --passphrase-file, IFADIT_PASSPHRASE or a prompt (asked twice).
    A local vault wraps the KEK in each user's keyslot (single custodian). With --service the KEK goes
    to Shamir shares printed once (or to an HSM with --hsm-module): users log in to `ifadit vault serve`.

    \b
    Example:
      ifadit vault init --vault /srv/ifadit/vault.sqlite3 --admin alice
      ifadit vault init --service --shares 3 --threshold 2 --vault postgresql+psycopg://ifadit@db/lab
    """
    if is_service_url(vault_url):
        raise click.UsageError(
            "vault init runs on the vault server against its database URL, not a service URL"
        )
    if hsm is not None and not service:
        raise click.UsageError("--hsm-module wraps a service-mode KEK: add --service")
    with usage_errors():
        kdf = KdfParams.generate(memory_cost=kdf_memory_kib, iterations=kdf_iterations, lanes=kdf_lanes)
    passphrase = VaultArgs(vault_url, admin_name, passphrase_file).passphrase(confirm=True)
    if service:
        from ifadit_cli.service_options import print_service_init

        with usage_errors():
            print_service_init(vault_url, admin_name, passphrase, kdf, shares, threshold, hsm, as_json)
        return
    with (
        usage_errors(),
        Vault.init(
            vault_url, admin_name, passphrase, kdf=kdf, unlock_delay=timedelta(seconds=unlock_delay)
        ) as vault,
    ):
        result = {
            "vault_id": vault.id,
            "url": display_url(vault.url),
            "admin": admin_name,
            "audit_key_fingerprint": key_fingerprint(vault.public_key),
        }
    emit(
        result,
        as_json,
        lambda r: (
            f"vault {r['vault_id']} created at {r['url']} (admin {r['admin']}); "
            f"audit key fingerprint {r['audit_key_fingerprint']}"
        ),
    )


@vault_group.command("policy")
@vault_options
@click.option(
    "--require-approval",
    type=click.Choice(["yes", "no"]),
    default=None,
    show_default="unchanged",
    help="Whether a restore needs an approval by another user (approver role).",
)
@click.option(
    "--approval-ttl",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="HOURS",
    show_default="unchanged (initially 24)",
    help="How long an approval stays valid, in hours.",
)
@click.option(
    "--unlock-delay",
    type=click.FloatRange(0, MAX_UNLOCK_DELAY.total_seconds()),
    default=None,
    metavar="SECONDS",
    show_default="unchanged (initially 1)",
    help="Pause after each failed unlock: slows online passphrase guessing, costs a typo that long.",
)
@click.option(
    "--approvals",
    type=click.IntRange(1, access.MAX_APPROVALS),
    default=None,
    metavar="T",
    show_default="unchanged (initially 1)",
    help="Quorum: distinct approvers a restore request needs, none of them the requester nor tied to "
    "them by the two-person rule. More approvers, fewer lone decisions; each one is a delay.",
)
@action_option
@json_option
def vault_policy(
    vault_args: VaultArgs,
    require_approval: str | None,
    approval_ttl: float | None,
    unlock_delay: float | None,
    approvals: int | None,
    admin_action: str | None,
    as_json: bool,
) -> None:
    """Show the vault policy, or change it (admin only; audited).

    With two admins a change first files an admin action (exit 3); once another admin approves it, run
    the same command again with --action.

    \b
    Example:
      ifadit vault policy --require-approval yes --approval-ttl 8 --approvals 2
    """
    change = PolicyChange(
        require_approval=None if require_approval is None else require_approval == "yes",
        approval_ttl=None if approval_ttl is None else timedelta(hours=approval_ttl),
        unlock_delay=None if unlock_delay is None else timedelta(seconds=unlock_delay),
        approvals=approvals,
    )
    show = admin_action is None and all(value is None for value in dataclasses.asdict(change).values())
    with vault_args.api() as vault:
        policy = vault.policy() if show else vault.set_policy(change, admin_action)
    emit(
        policy,
        as_json,
        lambda p: (
            f"require approval: {'yes' if p.require_approval else 'no'}; "
            f"approvers per request: {p.approvals}; "
            f"approval valid for {p.approval_ttl.total_seconds() / 3600:g} h; "
            f"failed unlocks wait {p.unlock_delay.total_seconds():g} s"
        ),
    )


@vault_group.command("upgrade")
@vault_url_option
def vault_upgrade(vault_url: str | None) -> None:
    """Upgrade the vault's database schema to this version of ifadit (back it up first).

    \b
    Example:
      cp vault.sqlite3 vault.sqlite3.bak && ifadit vault upgrade --vault vault.sqlite3
    """
    if is_service_url(vault_url):
        raise click.UsageError("vault upgrade runs on the vault server against its database URL")
    before, after = upgrade_vault(vault_url)
    click.echo(f"schema revision {before} -> {after}" if before != after else f"schema already at {after}")


# ---------------------------------------------------------------- users


@click.group("users")
def users_group() -> None:
    """Add, list and disable the people who unlock the vault.

    \b
    Example:
      IFADIT_NEW_PASSPHRASE=... ifadit users add bob --role investigator
    """


@users_group.command("add")
@vault_options
@click.argument("name")
@click.option(
    "--role",
    "roles",
    type=click.Choice(ROLES),
    multiple=True,
    required=True,
    help="A role of the new user (repeat for several).",
)
@action_option
@json_option
def users_add(
    vault_args: VaultArgs, name: str, roles: tuple[str, ...], admin_action: str | None, as_json: bool
) -> None:
    """Add a user (admin only); their passphrase comes from IFADIT_NEW_PASSPHRASE or a prompt asked twice.

    With two admins the first run files an admin action (exit 3); once another admin approves it, run
    the same command again with --action.

    \b
    Example:
      ifadit users add carol --role approver --role auditor
    """
    with vault_args.api() as vault:
        passphrase = new_passphrase(name)
        with usage_errors():
            user = vault.add_user(name, list(roles), passphrase, admin_action)
    emit(user, as_json, lambda u: f"added {u.name} ({', '.join(u.roles)})")


@users_group.command("list")
@vault_options
@json_option
def users_list(vault_args: VaultArgs, as_json: bool) -> None:
    """List users, their roles, whether they are disabled and who added them (admin or auditor).

    \b
    Example:
      ifadit users list --json
    """
    with vault_args.api() as vault:
        users = vault.list_users()
    emit(users, as_json, lambda us: table(USER_COLUMNS, [_user_row(u) for u in us]))


@users_group.command("disable")
@vault_options
@click.argument("name")
@click.option("--reason", default=None, show_default="none", help="Why (kept in the audit log).")
@confirm_option
def users_disable(vault_args: VaultArgs, name: str, reason: str | None, yes: bool) -> None:
    """Disable a user: their passphrase no longer unlocks the vault (admin only).

    \b
    Example:
      ifadit users disable bob --reason "left the unit" --yes
    """
    require_yes(yes, f"disabling {name}")
    with vault_args.api() as vault:
        vault.disable_user(name, reason)
    click.echo(f"disabled {name}")


# ---------------------------------------------------------------- keys


@click.group("keys")
def keys_group() -> None:
    """Issue anonymization keys and manage their lifecycle (active, suspended, revoked, pending-destroy, destroyed).

    \b
    Example:
      ifadit keys issue --case C-17 --purpose "CCTV release"
    """


@keys_group.command("issue")
@vault_options
@click.option("--case", "case_id", required=True, help="Case id the key belongs to (never shown in outputs).")
@click.option(
    "--purpose", required=True, help="What the key is for (kept with the key and in the audit log)."
)
@click.option(
    "--expires",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    show_default="never",
    help="Date (UTC midnight) from which the key no longer anonymizes; restores still work.",
)
@json_option
def keys_issue(
    vault_args: VaultArgs, case_id: str, purpose: str, expires: datetime | None, as_json: bool
) -> None:
    """Issue a new key for a case and print its opaque handle (admin only).

    \b
    Example:
      ifadit keys issue --case C-17 --purpose "CCTV release" --expires 2027-06-30
    """
    with vault_args.api() as vault, usage_errors():
        key = vault.issue_key(case_id, purpose, expires.replace(tzinfo=UTC) if expires else None)
    emit(key, as_json, lambda k: k.handle)


@keys_group.command("list")
@vault_options
@click.option("--case", "case_id", default=None, show_default="all cases", help="Only keys of this case.")
@click.option(
    "--state",
    type=click.Choice(KEY_STATES),
    default=None,
    show_default="all states",
    help="Only keys in this state.",
)
@json_option
def keys_list(vault_args: VaultArgs, case_id: str | None, state: str | None, as_json: bool) -> None:
    """List keys, newest first (never material).

    \b
    Example:
      ifadit keys list --case C-17 --state active
    """
    with vault_args.api() as vault:
        found = vault.list_keys(case_id, state)
    emit(found, as_json, lambda ks: table(KEY_COLUMNS, [_key_row(k) for k in ks]))


@keys_group.command("show")
@vault_options
@click.argument("handle")
@json_option
def keys_show(vault_args: VaultArgs, handle: str, as_json: bool) -> None:
    """Show a key's case, purpose, state, dates and versions (never material).

    \b
    Example:
      ifadit keys show kh_3f9a...
    """
    with vault_args.api() as vault:
        key = vault.show_key(handle)
    emit(key, as_json, _key_text)


@keys_group.command("rotate")
@vault_options
@click.argument("handle")
@json_option
def keys_rotate(vault_args: VaultArgs, handle: str, as_json: bool) -> None:
    """Add a new version; anonymizing uses it from now on, restores still accept older ones.

    \b
    Example:
      ifadit keys rotate kh_3f9a...
    """
    with vault_args.api() as vault:
        key = vault.rotate_key(handle)
    emit(key, as_json, lambda k: f"{k.handle} rotated to version {k.current_version}")


def _state_command(verb: str, summary: str, needs_reason: bool) -> click.Command:
    destructive = verb == "revoke"

    @vault_options
    @click.argument("handle")
    @click.option(
        "--reason",
        required=needs_reason,
        show_default=not needs_reason and "none",
        help="Why (kept in the audit log)." + (" Required." if needs_reason else ""),
    )
    @json_option
    def command(
        vault_args: VaultArgs, handle: str, reason: str | None, as_json: bool, yes: bool = True
    ) -> None:
        if destructive:
            require_yes(yes, f"{verb} of {handle}")
        with vault_args.api() as vault, usage_errors():
            key = vault.change_key_state(verb, handle, reason)
        emit(key, as_json, lambda k: f"{k.handle} is {k.state}")

    command.__doc__ = summary
    if destructive:
        command = confirm_option(command)
    return click.command(verb)(command)


keys_group.add_command(
    _state_command(
        "suspend",
        """Suspend a key: every use is refused until resumed.

\b
Example:
  ifadit keys suspend kh_3f9a... --reason "device seized"
""",
        needs_reason=False,
    )
)
keys_group.add_command(
    _state_command(
        "resume",
        """Resume a suspended key.

\b
Example:
  ifadit keys resume kh_3f9a...
""",
        needs_reason=False,
    )
)
keys_group.add_command(
    _state_command(
        "revoke",
        """Revoke a key for good: anonymize and restore are refused.

The sealed material is kept until the key is destroyed.

\b
Example:
  ifadit keys revoke kh_3f9a... --reason "case closed" --yes
""",
        needs_reason=True,
    )
)


@keys_group.command("destroy")
@vault_options
@click.argument("handle")
@click.option("--reason", required=True, help="Why (kept in the audit log). Required.")
@click.option(
    "--window",
    type=click.FloatRange(min=0),
    default=keys.DESTROY_WINDOW.days,
    show_default=True,
    metavar="DAYS",
    help="Days before the material is erased; `keys cancel-destroy` stops it meanwhile. 0: at once "
    "(with two admins, the other approves the window too).",
)
@action_option
@json_option
@confirm_option
def keys_destroy(
    vault_args: VaultArgs,
    handle: str,
    reason: str,
    window: float,
    admin_action: str | None,
    as_json: bool,
    yes: bool,
) -> None:
    """Schedule a revoked key's destruction: erase its material after the window, keep a tombstone.

    The key turns pending-destroy at once (every use refused); the first key action after the window
    erases its material and anonymizations under it become permanent. With two admins the first run
    files an admin action (exit 3); once another admin approves it, run it again with --action.

    \b
    Example:
      ifadit keys destroy kh_3f9a... --reason "retention period over" --yes
    """
    require_yes(yes, f"destroy of {handle}")
    with vault_args.api() as vault, usage_errors():
        key = vault.destroy_key(handle, reason, timedelta(days=window), admin_action)
    emit(key, as_json, lambda k: f"{k.handle} is {k.state}")


keys_group.add_command(keys_cancel_destroy)


def register(group: click.Group) -> None:
    """Add the vault, users and keys groups to the root command."""
    for command in (vault_group, users_group, keys_group):
        group.add_command(command)
