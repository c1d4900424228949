"""Shared click options: which vault and who acts (``vault_options``), ``--json`` output, and rendering.

The passphrase comes from ``--passphrase-file``, else ``IFADIT_PASSPHRASE``, else a hidden prompt when
stdin is a terminal; it is never an option value (it would show in the shell history and `ps`).

``--vault`` names a database (a local vault) or a vault service (``https://…``, ``http://127.0.0.1:…``,
``unix:///…``). Commands written against ``VaultArgs.api()`` run either way; a command that still
needs ``VaultArgs.open()`` (a library ``Vault`` in this process) stops with ``NotRouted`` on a service
URL: it never falls back to a database.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from keyvault import Vault
    from keyvault.service.api import VaultAPI
    from keyvault.service.client import VaultClient
    from keyvault.service.errors import NotRouted

PASSPHRASE_ENV = "IFADIT_PASSPHRASE"
NEW_PASSPHRASE_ENV = "IFADIT_NEW_PASSPHRASE"


def _read_secret_file(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise click.UsageError(f"cannot read the passphrase file {path}: {exc.strerror}") from None
    return data.removesuffix(b"\n").removesuffix(b"\r")


def _prompt(label: str, *, confirm: bool) -> bytes:
    if not sys.stdin.isatty():
        raise click.UsageError(
            f"no passphrase: pass --passphrase-file or set {PASSPHRASE_ENV} (stdin is not a terminal, no prompt)"
        )
    text = click.prompt(label, hide_input=True, confirmation_prompt=confirm, err=True)
    return str(text).encode()


@dataclasses.dataclass(frozen=True)
class VaultArgs:
    """Where the vault is, who acts, and where their passphrase comes from."""

    url: str | None
    user: str
    passphrase_file: Path | None
    ca: Path | None = None  # CA certificate that a vault service's TLS certificate must chain to

    @property
    def remote(self) -> bool:
        """True when ``--vault`` names a vault service rather than a database."""
        from keyvault.service.urls import is_service_url

        return is_service_url(self.url)

    def passphrase(self, *, confirm: bool = False) -> bytes:
        """The acting user's passphrase: file, then IFADIT_PASSPHRASE, then a hidden prompt."""
        if self.passphrase_file is not None:
            return _read_secret_file(self.passphrase_file)
        if os.environ.get(PASSPHRASE_ENV):
            return os.environ[PASSPHRASE_ENV].encode()
        return _prompt(f"Passphrase for {self.user}", confirm=confirm)

    def not_routed(self, detail: str = "") -> NotRouted:
        """The error of a command that cannot run through the vault service yet (``detail`` says more)."""
        from keyvault.service.errors import NotRouted

        context = click.get_current_context(silent=True)
        command = " ".join(["ifadit", *context.command_path.split()[1:]]) if context else "this command"
        return NotRouted(
            f"`{command}` does not run through the vault service yet (issue 25){detail}",
            hint="served: anonymize, restore, users, keys, vault policy|status|operator, admin-actions, "
            "requests, approve, audit, login, logout; "
            "docs/security.md, 'Service mode', lists what is not",
        )

    def open(self) -> Vault:
        """Unlock the local vault as the acting user; ``NotRouted`` for a vault-service URL."""
        if self.remote:
            raise self.not_routed()
        from keyvault import open_vault  # loads the database code, which a service's client never needs

        return open_vault(self.url, self.user, self.passphrase())

    def client(self, *, login: bool = True) -> VaultClient:
        """A client of the vault service at ``--vault``, with the acting user's stored token when ``login``."""
        from keyvault.service import tokenfile
        from keyvault.service.client import VaultClient
        from keyvault.service.errors import TokenError

        assert self.url is not None and self.remote
        token = tokenfile.load(self.url, self.user) if login else None
        if login and token is None:
            raise TokenError(
                f"not logged in to {self.url} as {self.user}",
                hint=f"run `ifadit login --vault {self.url} --user {self.user}`",
            )
        return VaultClient(self.url, token=token, ca=self.ca)

    def api(self) -> VaultAPI:
        """The vault operations: through the service for a service URL, else on the unlocked local vault."""
        if self.remote:
            return self.client()
        from keyvault.service.local_api import LocalAPI

        return LocalAPI(self.open())


def new_passphrase(user: str) -> bytes:
    """A new user's passphrase: IFADIT_NEW_PASSPHRASE, else a hidden prompt asked twice."""
    if os.environ.get(NEW_PASSPHRASE_ENV):
        return os.environ[NEW_PASSPHRASE_ENV].encode()
    if not sys.stdin.isatty():
        raise click.UsageError(
            f"no passphrase for {user}: set {NEW_PASSPHRASE_ENV} (stdin is not a terminal)"
        )
    return str(
        click.prompt(f"New passphrase for {user}", hide_input=True, confirmation_prompt=True, err=True)
    ).encode()


vault_url_option = click.option(
    "--vault",
    "vault_url",
    envvar="IFADIT_VAULT",
    default=None,
    metavar="URL",
    show_default="IFADIT_VAULT, else vault.sqlite3 in the user data dir",
    help="Vault service (https://HOST:PORT, http://127.0.0.1:PORT, unix:///PATH) or, for a local vault, "
    "its database: a SQLAlchemy URL (sqlite:///..., postgresql+psycopg://...) or a file path.",
)
vault_ca_option = click.option(
    "--vault-ca",
    "vault_ca",
    envvar="IFADIT_VAULT_CA",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    show_default="IFADIT_VAULT_CA, else the system's CAs",
    help="CA certificate the vault service's TLS certificate must chain to (pins the service).",
)
passphrase_file_option = click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    show_default=f"{PASSPHRASE_ENV}, else a hidden prompt",
    help="File whose first line is the passphrase.",
)


def file_option(
    *param_decls: str, exists: bool = False, **attrs: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A click option naming one file (not a folder), given to the command as a `Path`; with `exists`, click
    refuses a path that is not there."""
    return click.option(*param_decls, type=click.Path(dir_okay=False, exists=exists, path_type=Path), **attrs)


def vault_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add --vault, --vault-ca, --user and --passphrase-file; the command receives them as ``vault_args``."""

    @vault_url_option
    @vault_ca_option
    @click.option(
        "--user",
        envvar="IFADIT_USER",
        default="admin",
        show_default=True,
        help="Acting user (env IFADIT_USER).",
    )
    @passphrase_file_option
    @functools.wraps(command)
    def wrapper(
        *args: Any,
        vault_url: str | None,
        vault_ca: Path | None,
        user: str,
        passphrase_file: Path | None,
        **kwargs: Any,
    ) -> Any:
        return command(*args, vault_args=VaultArgs(vault_url, user, passphrase_file, vault_ca), **kwargs)

    return wrapper


def json_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add --json (results as JSON on stdout instead of text)."""
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        default=False,
        show_default=True,
        help="Print the result as JSON for machines.",
    )(command)


def confirm_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add --yes, which destructive commands require."""
    return click.option(
        "--yes", is_flag=True, default=False, show_default=True, help="Confirm this irreversible action."
    )(command)


def require_yes(yes: bool, what: str) -> None:
    """Refuse a destructive command that was not confirmed with --yes (usage error, exit 2)."""
    if not yes:
        raise click.UsageError(f"{what} cannot be undone: pass --yes to confirm")


@contextmanager
def usage_errors() -> Iterator[None]:
    """Turn the library's argument errors (ValueError) into a usage error (exit 2) instead of a traceback."""
    try:
        yield
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def jsonable(value: Any) -> Any:
    """Dataclasses, datetimes, timedeltas, bytes and tuples as JSON-safe values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value) if f.repr}
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def emit(result: Any, as_json: bool, text: Callable[[Any], str]) -> None:
    """Print ``result`` on stdout: as JSON with --json, else through ``text``."""
    if as_json:
        click.echo(json.dumps(jsonable(result), indent=2, ensure_ascii=False))
    else:
        click.echo(text(result))


def short_time(moment: datetime | None) -> str:
    """A UTC time to the minute for tables, '-' for none."""
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Rows under a header row, columns padded to their widest cell; the last column is left unpadded.

    With no rows the header stands alone, so an empty listing still says what it would list. Cells
    hold recorded text (reasons, names): control characters are shown escaped (``\\x1b``), so a value
    cannot break the table or send escape sequences to the reader's terminal.
    """
    cells = [list(headers), *([_printable(cell) for cell in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers) - 1)]
    return "\n".join(
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]]).rstrip()
        for row in cells
    )
