"""The import direction of docs/architecture.md, checked by import-linter's contracts in pyproject.toml.

A module that imports a higher layer, opens keyvault's crypto or database internals from outside keyvault,
makes keyvault depend on ifadit or torch, or closes an import cycle inside a package fails this test; the
failure prints the offending import chain.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"


def test_every_import_contract_is_kept(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    assert lint_imports(config_filename=str(PYPROJECT), no_cache=True) == 0


def test_the_contracts_cover_every_layer_and_package() -> None:
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]
    assert set(config["root_packages"]) == {"cli", "ifadit", "keyvault"}
    layers = next(c for c in config["contracts"] if c["type"] == "layers")["layers"]
    named = {module.strip() for layer in layers for module in layer.split("|")}
    packages = {f"ifadit.{p.name}" for p in (ROOT / "ifadit").iterdir() if (p / "__init__.py").is_file()}
    assert packages <= named, f"ifadit packages with no layer: {sorted(packages - named)}"
    assert {"cli", "keyvault"} <= named
