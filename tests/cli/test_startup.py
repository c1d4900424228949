"""`ifadit` starts without torch or FrEIA: only the training commands load them, and only when they run.

A restore through the vault service loads no image, model or database code at all (issue 25's interactive
speed), and each root command loads from the modules `ifadit_cli.main.COMMANDS` names for it.
"""

from __future__ import annotations

import importlib
import subprocess
import sys

import click

from ifadit import __version__
from ifadit_cli.main import COMMANDS
from tests.conftest import REPO_ROOT

HEAVY = ("torch", "FrEIA")
WORKSTATION_HEAVY = (*HEAVY, "numpy", "cv2", "av", "sqlalchemy", "alembic", "cryptography", "fastapi")
MARK = "heavy modules loaded:"


def _run_fresh(statement: str, heavy: tuple[str, ...] = HEAVY) -> tuple[str, list[str]]:
    """Run `statement` in a fresh interpreter; its stdout and the `heavy` packages it left imported."""
    code = (
        f"import sys\n{statement}\n"
        f"print({MARK!r}, ','.join(sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r}))))"
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


def test_a_restore_through_the_service_loads_no_image_model_or_database_code() -> None:
    statement = (
        "import click\n"
        "from ifadit_cli.main import cli\n"
        "cli.get_command(click.Context(cli), 'restore')\n"
        "from keyvault.service.client import VaultClient\n"
        "VaultClient('http://127.0.0.1:9').close()"
    )
    assert _run_fresh(statement, WORKSTATION_HEAVY)[1] == []


def test_each_root_command_loads_from_the_modules_named_for_it() -> None:
    registered: dict[str, set[str]] = {}
    for module in sorted({name for modules in COMMANDS.values() for name in modules}):
        group = click.Group()
        importlib.import_module(module).register(group)
        for command in group.commands:
            registered.setdefault(command, set()).add(module)
    assert set(registered) == set(COMMANDS)
    for command, modules in registered.items():
        assert modules <= set(COMMANDS[command]), (command, modules)


def test_the_training_commands_start_without_pyav_cryptography_or_the_database_code() -> None:
    """The lent GPU machine's image lacks them (docs/model.md, "Training on a GPU machine")."""
    output, _ = _run_fresh(
        "import importlib.abc\n"
        "class Missing(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('av', 'cryptography', 'sqlalchemy', 'alembic'):\n"
        "            raise ImportError(f'{name} is not installed here')\n"
        "sys.meta_path.insert(0, Missing())\n"
        "from ifadit_cli.main import cli\n"
        "for command in ('generator', 'flow'):\n"
        "    try:\n"
        "        cli(['train', command, '--help'])\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code == 0, exit.code"
    )
    assert output.count("Usage: ") == 2 and "--steps" in output


def test_version_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ifadit_cli", "--version"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == f"ifadit, version {__version__}"
