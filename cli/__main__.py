"""`python -m ifadit_cli` runs the `ifadit` command."""

from ifadit_cli.main import cli

cli()
