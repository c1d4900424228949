"""Every command is documented: help with a summary and an example, and docs/cli.md is current."""

from __future__ import annotations

import click
import pytest

from ifadit_cli.reference import help_text, iter_commands, render_reference
from tests.conftest import REPO_ROOT

COMMANDS = list(iter_commands())


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_command_has_summary_and_example(path: tuple[str, ...], command) -> None:
    text = help_text(path, command)
    assert command.help and command.help.strip(), f"{' '.join(path)} has no help text"
    assert "Example" in text, f"{' '.join(path)} --help shows no example"


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_option_has_help(path: tuple[str, ...], command) -> None:
    for param in command.params:
        if isinstance(param, click.Option) and param.name not in {"help", "version"}:
            assert param.help, f"{' '.join(path)}: option {param.opts} has no help"


def test_reference_doc_is_current() -> None:
    doc = (REPO_ROOT / "docs" / "cli.md").read_text()
    assert render_reference() in doc, "docs/cli.md is stale: run `make docs`"
