"""Auto-unseal by an HSM over PKCS#11: SoftHSM2 holds the AES key that wraps the service KEK.

The test setup installs Debian's softhsm2 when it is missing under CI (CI=true); elsewhere it skips with
the reason. Each test gets its own token in one session-wide SoftHSM2 configuration (the PKCS#11
library reads its configuration once per process).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from keyvault.service.client import VaultClient
from keyvault.service.errors import HsmError, UnsealError
from keyvault.service.hsm import HsmConfig
from keyvault.service.state import ServiceState
from tests.keyvault.service.support import init_vault, running_service
from tests.keyvault.support import ADMIN, ADMIN_PASS, execute, table_rows

MODULES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")
PIN = "4711-test-pin"


def _module() -> str | None:
    return next((m for m in MODULES if Path(m).is_file()), None)


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The SoftHSM2 module path, with SOFTHSM2_CONF pointing at a token folder of this test session."""
    if shutil.which("softhsm2-util") is None or _module() is None:
        if os.environ.get("CI", "").lower() != "true":
            pytest.skip("softhsm2 is not installed (apt-get install softhsm2); CI installs it")
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "softhsm2"], check=True, capture_output=True, timeout=300
        )
    module = _module()
    assert module is not None, "softhsm2 installed but its PKCS#11 module was not found"
    folder = tmp_path_factory.mktemp("softhsm")
    (folder / "tokens").mkdir()
    conf = folder / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {folder / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    try:
        yield module
    finally:
        if previous is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = previous


@pytest.fixture
def hsm(softhsm: str) -> HsmConfig:
    label = f"ifadit-{secrets.token_hex(4)}"
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", PIN, "--so-pin", "so-" + PIN],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return HsmConfig(module=softhsm, token_label=label, pin=PIN)


def test_an_hsm_vault_auto_unseals_and_prints_no_shares(vault_url: str, hsm: HsmConfig) -> None:
    init = init_vault(vault_url, hsm=hsm)
    assert init.mode == "hsm" and init.shares == ()
    (seal_row,) = table_rows(vault_url, "service_seal")
    assert seal_row["mode"] == "hsm" and len(seal_row["hsm_wrapped_kek"]) == 16 + 48
    assert PIN not in repr(hsm)
    with running_service(vault_url, hsm=hsm) as service:
        client = VaultClient(service.url)
        assert client.status()["sealed"] is False
        client.login(ADMIN, ADMIN_PASS)
        assert client.issue_key("C-1", "hsm", None).state == "active"


def test_a_changed_wrapped_kek_or_a_wrong_pin_does_not_unseal(vault_url: str, hsm: HsmConfig) -> None:
    init_vault(vault_url, hsm=hsm)
    wrong_pin = HsmConfig(module=hsm.module, token_label=hsm.token_label, pin="0000")
    with pytest.raises(HsmError, match="cannot open HSM token") as caught:
        ServiceState(vault_url, hsm=wrong_pin).auto_unseal()
    assert "0000" not in str(caught.value)
    (seal_row,) = table_rows(vault_url, "service_seal")
    blob = bytearray(seal_row["hsm_wrapped_kek"])
    blob[20] ^= 1  # a flipped bit in the first CBC block: padding may still pass, the KEK check does not
    execute(vault_url, "UPDATE service_seal SET hsm_wrapped_kek = :blob", blob=bytes(blob))
    state = ServiceState(vault_url, hsm=hsm)
    with pytest.raises((UnsealError, HsmError)):
        state.auto_unseal()
    assert state.sealed
    state.close()


def test_the_hsm_key_label_is_never_reused(vault_url: str, hsm: HsmConfig, tmp_path: Path) -> None:
    init_vault(vault_url, hsm=hsm)
    with pytest.raises(HsmError, match="already holds a key"):
        init_vault(f"sqlite:///{tmp_path / 'second.sqlite3'}", hsm=hsm)
