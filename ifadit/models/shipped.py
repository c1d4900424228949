"""Where the shipped models are: one lookup that works from a clone and from an installed wheel.

The repository keeps its models in `pretrained/`; the wheel installs that folder as the package
`ifadit_pretrained` (setuptools `package-dir`), so `pip install ifadit` brings the default model along. Lookup
order, first hit wins:

1. `$IFADIT_PRETRAINED` (a lab that keeps its models elsewhere, or a test's copy);
2. `pretrained/` beside the imported `ifadit` package, when it holds `index.json`: a source checkout or
   worktree uses its own models, whichever install its environment has;
3. the installed `ifadit_pretrained` package (a wheel, or an editable install's mapping to the repo folder).

No folder at all is a `ModelError` naming the fixes, so a default backend never quietly degrades.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from ifadit.errors import ModelError

ENV_VAR = "IFADIT_PRETRAINED"
PACKAGE = "ifadit_pretrained"  # the wheel's name for the repository's pretrained/ folder
INDEX_FILE = "index.json"
CHECKOUT_FOLDER = Path(__file__).resolve().parents[2] / "pretrained"  # beside ifadit/ in a source tree
INSTALL_HINT = (
    "reinstall ifadit, whose wheel ships the models; or set IFADIT_PRETRAINED to a folder holding them; "
    "or choose a one-way backend explicitly with --backend blur"
)


def installed_folder() -> Path | None:
    """The folder of the installed `ifadit_pretrained` package, or None when it is not installed."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def pretrained_root() -> Path:
    """The folder holding the shipped model folders and `index.json` (lookup order in the module docstring)."""
    root = os.environ.get(ENV_VAR)
    if root:
        return Path(root)
    if (CHECKOUT_FOLDER / INDEX_FILE).is_file():
        return CHECKOUT_FOLDER
    installed = installed_folder()
    if installed is not None:
        return installed
    raise ModelError(f"shipped models not found (no ${ENV_VAR}, no {PACKAGE} package)", hint=INSTALL_HINT)


def shipped_model_dir(name: str) -> Path:
    """The folder of shipped model `name` (e.g. "ifadit-64"); it may still lack files (callers check)."""
    return pretrained_root() / name
