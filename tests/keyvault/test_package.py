"""The vault package stands alone: its public API resolves and importing it pulls in neither ifadit nor torch."""

from __future__ import annotations

import subprocess
import sys

import keyvault


def test_public_api_resolves() -> None:
    assert sorted(keyvault.__all__) == keyvault.__all__
    for name in keyvault.__all__:
        assert getattr(keyvault, name) is not None, name


def test_import_pulls_in_no_image_or_model_code() -> None:
    code = (
        "import sys, keyvault, keyvault.auditor, keyvault.keys, keyvault.access;"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in ('ifadit', 'torch', 'numpy'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_offline_verification_imports_no_database_code() -> None:
    code = (
        "import sys, keyvault, keyvault.verify;"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'alembic'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
