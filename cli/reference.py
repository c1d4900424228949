"""Render the help of every `ifadit` command as Markdown (for docs/cli.md, via cog)."""

from __future__ import annotations

from collections.abc import Iterator

import click

from ifadit_cli.main import cli


def iter_commands(
    command: click.Command = cli, path: tuple[str, ...] = ("ifadit",)
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Yield (command path, command) for the root and every subcommand, depth first, sorted by name."""
    yield path, command
    if isinstance(command, click.Group):
        ctx = click.Context(command, info_name=path[-1])
        for name in sorted(command.list_commands(ctx)):
            subcommand = command.get_command(ctx, name)
            assert subcommand is not None, f"{' '.join(path)} lists {name} but has no such command"
            yield from iter_commands(subcommand, (*path, name))


def help_text(path: tuple[str, ...], command: click.Command) -> str:
    """The `--help` output of one command, as a user sees it."""
    parent: click.Context | None = None
    for name in path[:-1]:
        parent = click.Context(click.Command(name), info_name=name, parent=parent)
    ctx = click.Context(
        command,
        info_name=path[-1],
        parent=parent,
        terminal_width=100,
        max_content_width=100,
        help_option_names=["-h", "--help"],
    )
    return command.get_help(ctx)


def render_reference() -> str:
    """Markdown with one section per command holding its help text."""
    sections = []
    for path, command in iter_commands():
        sections.append(f"\n## `{' '.join(path)}`\n\n```\n{help_text(path, command)}\n```\n")
    return "".join(sections)
