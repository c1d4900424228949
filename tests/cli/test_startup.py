"""`ifadit` starts without torch or FrEIA: only the training commands load them, and only when they run."""

from __future__ import annotations

import subprocess
import sys

from ifadit import __version__
from tests.conftest import REPO_ROOT

HEAVY = ("torch", "FrEIA")
MARK = "heavy modules loaded:"


def _run_fresh(statement: str) -> tuple[str, list[str]]:
    """Run `statement` in a fresh interpreter; its stdout and the heavy packages it left imported."""
    code = (
        f"import sys\n{statement}\n"
        f"print({MARK!r}, ','.join(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    output, _, loaded = result.stdout.rpartition(MARK)
    return output, [name for name in loaded.strip().split(",") if name]


def test_importing_the_cli_loads_no_torch_or_freia() -> None:
    assert _run_fresh("import ifadit_cli.main")[1] == []


def test_training_commands_and_their_options_load_no_torch() -> None:
    assert _run_fresh("import ifadit_cli.train, ifadit.training.options")[1] == []


def test_train_help_shows_the_option_defaults_without_torch() -> None:
    output, loaded = _run_fresh(
        "from ifadit_cli.main import cli\n"
        "try:\n"
        "    cli(['train', 'flow', '--help'])\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code"
    )
    assert "--margin FLOAT" in output and "[default: 0.1]" in output
    assert loaded == []


def test_version_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ifadit_cli", "--version"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == f"ifadit, version {__version__}"
