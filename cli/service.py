"""`ifadit vault serve|status`, `ifadit vault operator unseal|seal|revoke-tokens`, `ifadit login|logout`.

The service side holds the database URL (``--database`` or IFADIT_VAULT_DATABASE, in the service's
own environment); workstations only know its URL (``--vault``) and, for TLS, the CA (``--vault-ca``).
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ifadit_cli.admin import vault_group
from ifadit_cli.options import VaultArgs, emit, file_option, json_option, vault_options
from ifadit_cli.service_options import hsm_options

if TYPE_CHECKING:
    from keyvault.service.hsm import HsmConfig


def _require_service(vault_args: VaultArgs) -> None:
    if not vault_args.remote:
        raise click.UsageError(
            "--vault must name a vault service (https://HOST:PORT, http://127.0.0.1:PORT, unix:///PATH)"
        )


def _status_line(status: dict[str, object]) -> str:
    if not status["sealed"]:
        return f"vault {status['vault_id']}: unsealed ({status['mode']})"
    if status["mode"] == "hsm":
        return f"vault {status['vault_id']}: sealed (HSM auto-unseal failed or was not configured)"
    return (
        f"vault {status['vault_id']}: sealed, {status['progress']} of {status['threshold']} shares submitted"
    )


@vault_group.command("serve")
@click.option(
    "--database",
    envvar="IFADIT_VAULT_DATABASE",
    required=True,
    metavar="URL",
    help="Vault database (SQLAlchemy URL or SQLite path); env IFADIT_VAULT_DATABASE. Only the service knows it.",
)
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on (plain HTTP: loopback only)."
)
@click.option("--port", type=click.IntRange(1, 65535), default=8200, show_default=True, help="TCP port.")
@file_option(
    "--uds",
    default=None,
    show_default="TCP",
    help="Listen on this Unix socket (0600) instead of host:port.",
)
@file_option(
    "--tls-cert",
    exists=True,
    default=None,
    show_default="no TLS",
    help="TLS certificate chain (PEM); required off loopback.",
)
@file_option(
    "--tls-key",
    exists=True,
    default=None,
    show_default="no TLS",
    help="TLS private key (PEM).",
)
@click.option(
    "--token-ttl",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    metavar="MINUTES",
    help="Lifetime of a login token: shorter limits a stolen token, longer means fewer logins.",
)
@click.option(
    "--max-failures",
    type=click.IntRange(1, None),
    default=5,
    show_default=True,
    help="Failed logins in a row that lock a user name out.",
)
@click.option(
    "--lockout",
    type=click.FloatRange(min=0),
    default=15.0,
    show_default=True,
    metavar="MINUTES",
    help="How long a locked-out user name stays refused.",
)
@click.option(
    "--max-job-size",
    type=click.IntRange(1),
    default=512,
    show_default=True,
    metavar="MIB",
    help="Largest anonymize or restore job, in MiB of files each way (a workstation sends its files "
    "here because the keys never leave the service).",
)
@click.option(
    "--max-connections",
    type=click.IntRange(1),
    default=64,
    show_default=True,
    help="Open connections served at once; more are answered 503 at once instead of queueing unbounded.",
)
@hsm_options
def vault_serve(
    database: str,
    host: str,
    port: int,
    uds: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    token_ttl: float,
    max_failures: int,
    lockout: float,
    max_job_size: int,
    max_connections: int,
    hsm: HsmConfig | None,
) -> None:
    """Run the vault service: sealed at start, then unsealed by share custodians or the HSM.

    Besides keys, users, requests and the audit log, it runs `ifadit anonymize` and `ifadit restore`
    for workstations (`--vault URL`): they send their files, the service computes with key material
    that never leaves it and signs the manifests, and sends the outputs back.

    \b
    Example:
      IFADIT_VAULT_DATABASE=postgresql+psycopg://ifadit@db/lab ifadit vault serve --host 0.0.0.0 \\
          --tls-cert lab.crt --tls-key lab.key
    """
    from ifadit.pipeline.service_jobs import JOBS
    from keyvault.service.server import ServeConfig, serve

    config = ServeConfig(
        database=database,
        host=host,
        port=port,
        uds=uds,
        tls_cert=tls_cert,
        tls_key=tls_key,
        hsm=hsm,
        token_ttl=timedelta(minutes=token_ttl),
        max_failures=max_failures,
        lockout=timedelta(minutes=lockout),
        jobs=JOBS,
        max_job_bytes=max_job_size << 20,
        max_connections=max_connections,
    )
    where = f"unix:///{uds}" if uds else f"{'https' if tls_cert else 'http'}://{host}:{port}"
    click.echo(f"vault service listening on {where} (Ctrl-C stops it and forgets the KEK)", err=True)
    try:
        serve(config)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


@vault_group.command("status")
@vault_options
@json_option
def vault_status(vault_args: VaultArgs, as_json: bool) -> None:
    """Show whether the vault service is sealed, and how many unseal shares have arrived.

    \b
    Example:
      ifadit vault status --vault https://vault.lab:8200 --vault-ca lab-ca.pem
    """
    _require_service(vault_args)
    with vault_args.client(login=False) as client:
        status = client.status()
    emit(status, as_json, _status_line)


@vault_group.group("operator")
def operator_group() -> None:
    """Unseal and seal the vault service, revoke login tokens.

    \b
    Example:
      ifadit vault operator unseal --vault https://vault.lab:8200 --share-file my.share
    """


@operator_group.command("unseal")
@vault_options
@file_option(
    "--share-file",
    "share_files",
    exists=True,
    multiple=True,
    show_default="a hidden prompt",
    help="File holding one unseal share (repeat for several; each custodian usually brings one).",
)
@json_option
def operator_unseal(vault_args: VaultArgs, share_files: tuple[Path, ...], as_json: bool) -> None:
    """Submit an unseal share; the service unseals when its threshold of distinct shares has arrived.

    \b
    Example:
      ifadit vault operator unseal --vault https://vault.lab:8200   # prompts for the share
    """
    _require_service(vault_args)
    if share_files:
        shares = [path.read_text().strip() for path in share_files]
    elif sys.stdin.isatty():
        shares = [str(click.prompt("Unseal share", hide_input=True, err=True))]
    else:
        raise click.UsageError("no share: pass --share-file (stdin is not a terminal, no prompt)")
    with vault_args.client(login=False) as client:
        status = client.status()
        for share in shares:
            status = client.unseal(share)
    emit(status, as_json, _status_line)


@operator_group.command("seal")
@vault_options
def operator_seal(vault_args: VaultArgs) -> None:
    """Seal the service now: it forgets the KEK and every token (admin only; audited).

    \b
    Example:
      ifadit vault operator seal --vault https://vault.lab:8200
    """
    _require_service(vault_args)
    with vault_args.client() as client:
        status = client.seal()
    click.echo(_status_line(status))


@operator_group.command("revoke-tokens")
@vault_options
@click.argument("name")
def operator_revoke_tokens(vault_args: VaultArgs, name: str) -> None:
    """Revoke every login token of a user (admin only; audited).

    \b
    Example:
      ifadit vault operator revoke-tokens bob --vault https://vault.lab:8200
    """
    _require_service(vault_args)
    with vault_args.client() as client:
        count = client.revoke_tokens(name)
    click.echo(f"revoked {count} token(s) of {name}")


@click.command("login")
@vault_options
@json_option
def login_command(vault_args: VaultArgs, as_json: bool) -> None:
    """Log in to the vault service: exchange the passphrase for a short-lived token (stored 0600).

    \b
    Example:
      ifadit login --vault https://vault.lab:8200 --vault-ca lab-ca.pem --user alice
    """
    from keyvault.service import tokenfile

    _require_service(vault_args)
    assert vault_args.url is not None
    with vault_args.client(login=False) as client:
        token, expires = client.login(vault_args.user, vault_args.passphrase())
    path = tokenfile.save(
        tokenfile.StoredToken(url=vault_args.url, user=vault_args.user, token=token, expires=expires)
    )
    result = {"url": vault_args.url, "user": vault_args.user, "expires": expires, "token_file": str(path)}
    emit(
        result,
        as_json,
        lambda r: f"logged in to {r['url']} as {r['user']} until {r['expires']:%Y-%m-%d %H:%M} UTC",
    )


@click.command("logout")
@vault_options
def logout_command(vault_args: VaultArgs) -> None:
    """Revoke this user's token at the vault service and delete it here.

    \b
    Example:
      ifadit logout --vault https://vault.lab:8200 --user alice
    """
    from keyvault.service import tokenfile
    from keyvault.service.errors import TokenError

    _require_service(vault_args)
    assert vault_args.url is not None
    try:
        with vault_args.client() as client:
            client.logout()
    except TokenError:
        pass  # expired or already revoked: deleting the file is all that is left
    removed = tokenfile.forget(vault_args.url, vault_args.user)
    click.echo(f"logged out of {vault_args.url} as {vault_args.user}" if removed else "no stored token")


def register(group: click.Group) -> None:
    """Add `login` and `logout` (the vault subcommands attach to `vault` when this module loads)."""
    group.add_command(login_command)
    group.add_command(logout_command)
