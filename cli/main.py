"""Root `ifadit` command: global options, command registration and the single error -> exit-code handler."""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Any

import click

from ifadit import __version__
from ifadit.errors import IfaditError
from keyvault import VaultError

# Each module exposes `register(group: click.Group) -> None` and adds its commands to the root group.
COMMAND_MODULES: tuple[str, ...] = (
    "ifadit_cli.detect",
    "ifadit_cli.train",
    "ifadit_cli.admin",
    "ifadit_cli.admin_actions",
    "ifadit_cli.service",
    "ifadit_cli.audit",
    "ifadit_cli.anonymize",
    "ifadit_cli.restore",
    "ifadit_cli.evaluate",
    "ifadit_cli.models",
)


class IfaditGroup(click.Group):
    """Root group that turns every typed error into one `Error: ...` line and its exit code."""

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


def _register(group: click.Group, modules: Sequence[str]) -> None:
    for name in modules:
        importlib.import_module(name).register(group)


_register(cli, COMMAND_MODULES)
