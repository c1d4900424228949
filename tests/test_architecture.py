"""The shape of the house: the import direction of docs/architecture.md, and functions short enough to read.

A module that imports a higher layer, opens keyvault's crypto or database internals from outside keyvault,
makes keyvault depend on ifadit or torch, or closes an import cycle inside a package fails the first test
(import-linter's contracts in pyproject.toml; the failure prints the offending import chain). A function
of more than 80 lines outside the tests fails the last one, naming it.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
MAX_FUNCTION_LINES = 80
CODE_FOLDERS = ("ifadit", "keyvault", "cli", "scripts", "benchmarks")


def test_every_import_contract_is_kept(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    assert lint_imports(config_filename=str(PYPROJECT), no_cache=True) == 0


def test_the_contracts_cover_every_layer_and_package() -> None:
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]
    assert set(config["root_packages"]) == {"ifadit_cli", "ifadit", "keyvault"}
    layers = next(c for c in config["contracts"] if c["type"] == "layers")["layers"]
    named = {module.strip() for layer in layers for module in layer.split("|")}
    packages = {f"ifadit.{p.name}" for p in (ROOT / "ifadit").iterdir() if (p / "__init__.py").is_file()}
    assert packages <= named, f"ifadit packages with no layer: {sorted(packages - named)}"
    assert {"ifadit_cli", "keyvault"} <= named


def test_no_function_is_longer_than_80_lines() -> None:
    too_long = []
    for folder in CODE_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines = (node.end_lineno or node.lineno) - node.lineno + 1
                    if lines > MAX_FUNCTION_LINES:
                        too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not too_long, "split these into named steps: " + "; ".join(too_long)
