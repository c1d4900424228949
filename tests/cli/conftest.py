"""Fixtures the CLI tests share."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


@pytest.fixture(scope="session")
def chromium() -> str:
    """The chromium executable, installed from Debian when missing."""
    found = shutil.which("chromium")
    if found:
        return found
    try:
        subprocess.run(
            ["sh", "-c", "apt-get update -q && apt-get install -y -q chromium"],
            check=True,
            capture_output=True,
            timeout=900,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"chromium is missing and apt-get could not install it: {exc}")
        pytest.skip(f"chromium is missing and apt-get could not install it ({type(exc).__name__})")
    return shutil.which("chromium") or pytest.fail("apt-get installed chromium but it is not on PATH")
