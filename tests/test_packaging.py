"""The wheel installs anywhere with its models: built from this tree, installed into a fresh venv, and run.

`pyproject.toml` lists its packages by hand (`cli/` and `pretrained/` install as `ifadit_cli` and
`ifadit_pretrained`, which `find` cannot discover), so one test keeps that list equal to what `find_packages`
sees, and one keeps the package data covering every file `pretrained/index.json` lists. The end-to-end test builds the wheel from a clean copy
of the sources (`pip wheel --no-build-isolation`, offline), installs it with `--no-deps` into a venv whose
dependencies come from this environment's site-packages through a `.pth` line (no download, about 2 s), and
runs `ifadit anonymize` with the default backend, a restore request, a second person's approval and the
restore against a vault made by the library, all from a folder outside the repository, so no source checkout is on `sys.path`.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import numpy as np
from setuptools import find_packages

from ifadit.media.image import read_image, write_image
from tests.conftest import REPO_ROOT
from tests.pipeline.support import CASE, Lab, make_lab

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
WHEEL_SOURCES = ("pyproject.toml", "README.md", "cli", "ifadit", "keyvault", "pretrained")


def test_package_list_matches_the_source_tree() -> None:
    found = find_packages(where=str(REPO_ROOT), include=["ifadit*", "keyvault*", "cli*"])
    renamed = {"cli": "ifadit_cli"}  # folders installed under a distinct name (no top-level `cli` module)
    installed = [renamed.get(name, name) for name in found]
    assert sorted(PYPROJECT["packages"]) == sorted([*installed, "ifadit_pretrained"])
    assert not any(name == "cli" or name.startswith("cli.") for name in PYPROJECT["packages"])
    assert PYPROJECT["package-dir"] == {"ifadit_cli": "cli", "ifadit_pretrained": "pretrained"}


def test_package_data_ships_every_indexed_model_file() -> None:
    patterns = PYPROJECT["package-data"]["ifadit_pretrained"]
    index = json.loads((REPO_ROOT / "pretrained" / "index.json").read_text())
    listed = ["index.json"] + [f"{e['folder']}/{name}" for e in index.values() for name in e["files"]]
    missing = [path for path in listed if not any(fnmatch.fnmatch(path, p) for p in patterns)]
    assert not missing


def build_wheel(tmp_path: Path) -> Path:
    """The wheel built from a copy of the sources (no stale build/ folder can leak into it)."""
    source = tmp_path / "source"
    source.mkdir()
    for name in WHEEL_SOURCES:
        if (REPO_ROOT / name).is_dir():
            shutil.copytree(REPO_ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO_ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
    subprocess.run([*pip, "-w", str(tmp_path / "dist"), str(source)], check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("ifadit-*.whl")
    return wheel


def fresh_venv(tmp_path: Path, wheel: Path) -> Path:
    """A new venv holding only the wheel; its dependencies resolve to this environment's site-packages."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    # a path line only: this environment's own .pth files (an editable ifadit among them) are not run
    (Path(purelib) / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # --ignore-installed: pip sees this environment's ifadit too and must neither skip nor uninstall it
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index"]
    subprocess.run(
        [*pip, "--ignore-installed", str(wheel)],
        cwd=tmp_path,
        env=outside_env(),
        check=True,
        capture_output=True,
    )
    return venv / "bin" / "ifadit"


def outside_env() -> dict[str, str]:
    """This process's environment without IFADIT_* and PYTHON* settings (no checkout on a path)."""
    return {key: value for key, value in os.environ.items() if not key.startswith(("IFADIT_", "PYTHON"))}


def run_as(ifadit: Path, lab: Lab, work: Path, user: str, *args: str) -> str:
    """`ifadit ARGS` as `user` in `work` (outside the repository); its stdout. Fails the test on non-zero."""
    env = outside_env() | {"IFADIT_VAULT": lab.url, "IFADIT_USER": user, "IFADIT_PASSPHRASE": user}
    done = subprocess.run([ifadit, *args], cwd=work, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"ifadit {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def test_installed_wheel_anonymizes_and_restores_with_the_shipped_model(
    tmp_path: Path, astronaut: np.ndarray
) -> None:
    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        top_level = {name.split("/")[0] for name in archive.namelist() if "/" in name}
    assert {"ifadit", "ifadit_cli", "ifadit_pretrained", "keyvault"} <= top_level
    assert "cli" not in top_level  # no module with a generic name
    ifadit = fresh_venv(tmp_path, wheel)
    work = tmp_path / "lab"
    work.mkdir()
    write_image(work / "in.png", astronaut)
    lab = make_lab(work)  # the vault through the library (its format is tested elsewhere): saves 5 starts
    verified = run_as(ifadit, lab, work, "olga", "models", "verify")  # the installed package's copy
    assert verified.startswith("ok: 15 files in ") and "site-packages/ifadit_pretrained " in verified
    said = run_as(ifadit, lab, work, "olga", "anonymize", "in.png", "-o", "out.png", "--case", CASE, "--json")
    assert json.loads(said)["backend"] == "ifadit"  # the default, with the model the wheel shipped
    restore = ["restore", "out.png", "-o", "restored.png", "--case", CASE, "--reason", "court order"]
    request = run_as(ifadit, lab, work, "ivan", *restore, "--request-only")
    run_as(ifadit, lab, work, "alice", "approve", request)
    run_as(ifadit, lab, work, "ivan", *restore)
    original, anonymized, restored = (read_image(work / n) for n in ("in.png", "out.png", "restored.png"))
    assert restored.shape == original.shape
    assert not (anonymized == original).all() and not (restored == anonymized).all()
