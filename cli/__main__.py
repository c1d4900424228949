"""`python -m cli` runs the `ifadit` command."""

from cli.main import cli

cli()
