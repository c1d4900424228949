"""Root `ifadit` command: global options, command registration and the single error -> exit-code handler.

A command's module loads only when that command runs (or a help page lists it): `ifadit restore` through
the vault service starts without importing the image, model and database code other commands need.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

from ifadit import __version__
from ifadit.errors import IfaditError
from keyvault import VaultError

# The modules whose `register(group: click.Group) -> None` add each root command (`vault`'s service
# subcommands attach when `ifadit_cli.service` loads).
COMMANDS: dict[str, tuple[str, ...]] = {
    "admin-actions": ("ifadit_cli.admin_actions",),
    "anonymize": ("ifadit_cli.anonymize",),
    "approve": ("ifadit_cli.restore",),
    "audit": ("ifadit_cli.audit",),
    "detect": ("ifadit_cli.detect",),
    "eval": ("ifadit_cli.evaluate",),
    "keys": ("ifadit_cli.admin",),
    "login": ("ifadit_cli.service",),
    "logout": ("ifadit_cli.service",),
    "models": ("ifadit_cli.models",),
    "requests": ("ifadit_cli.restore",),
    "restore": ("ifadit_cli.restore",),
    "train": ("ifadit_cli.train",),
    "users": ("ifadit_cli.admin",),
    "vault": ("ifadit_cli.admin", "ifadit_cli.service"),
}


class IfaditGroup(click.Group):
    """Root group that loads each command's module on first use and turns every typed error into one
    `Error: ...` line and its exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        for name in COMMANDS.get(cmd_name, ()):
            importlib.import_module(name).register(self)
        return self.commands.get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (IfaditError, VaultError) as exc:
            if ctx.obj and ctx.obj.get("verbose"):
                raise
            click.echo(f"Error: {exc}", err=True)
            sys.exit(exc.exit_code)


@click.group(cls=IfaditGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ifadit")
@click.option("-v", "--verbose", is_flag=True, help="Show debug logging and full tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Reversible, key-managed face anonymization for forensic work.

    Faces are replaced by natural surrogate faces under a secret key kept in an encrypted vault;
    an authorized, audited restore brings the identity back.

    \b
    Example:
      ifadit vault init && ifadit keys issue --case C-17 --purpose "CCTV release"
    """
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, stream=sys.stderr)
