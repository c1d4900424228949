"""How clients reach the service: TLS with a pinned CA, a 0600 Unix socket, plain HTTP only on loopback.

The TLS test runs uvicorn in a thread with a certificate for 127.0.0.1 signed by a throwaway CA; the
Unix-socket and refusal tests run `ifadit vault serve` as a real subprocess, always stopped.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from keyvault.service.client import VaultClient
from keyvault.service.errors import ServiceUnavailable
from keyvault.service.server import ServeConfig, check_transport
from keyvault.vault import Vault
from tests.conftest import REPO_ROOT
from tests.keyvault.service.support import init_vault, running_service
from tests.keyvault.support import ADMIN, ADMIN_PASS, cheap_kdf

SERVE_TIMEOUT_S = 20.0


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer[0] if issuer else subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def _pem(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 under it, and an unrelated CA."""
    ca_key, other_key, server_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = _certificate("ifadit test CA", ca_key, None, ca=True)
    other = _certificate("someone else's CA", other_key, None, ca=True)
    server = _certificate("127.0.0.1", server_key, ("ifadit test CA", ca_key), ca=False)
    key_pem = server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {
        "ca": _pem(tmp_path / "ca.pem", ca.public_bytes(serialization.Encoding.PEM)),
        "other": _pem(tmp_path / "other.pem", other.public_bytes(serialization.Encoding.PEM)),
        "cert": _pem(tmp_path / "server.pem", server.public_bytes(serialization.Encoding.PEM)),
        "key": _pem(tmp_path / "server.key", key_pem),
    }


def test_tls_works_with_the_pinned_ca_and_fails_without_it(tmp_path: Path, pki: dict[str, Path]) -> None:
    url = f"sqlite:///{tmp_path / 'vault.sqlite3'}"
    init_vault(url)
    with running_service(url, tls=(pki["cert"], pki["key"])) as service:
        assert service.url.startswith("https://127.0.0.1:")
        with VaultClient(service.url, ca=pki["ca"]) as pinned:
            assert pinned.status()["sealed"] is True
        for ca in (None, pki["other"]):
            with (
                VaultClient(service.url, ca=ca) as client,
                pytest.raises(ServiceUnavailable, match="cannot reach the vault service"),
            ):
                client.status()


def test_plain_http_is_refused_off_loopback_on_both_sides() -> None:
    with pytest.raises(ServiceUnavailable, match="refusing plain HTTP to 10.1.2.3"):
        VaultClient("http://10.1.2.3:8200")
    with pytest.raises(ServiceUnavailable, match="refusing to serve plain HTTP on 0.0.0.0"):
        check_transport(ServeConfig(database="sqlite:///x", host="0.0.0.0"))
    with pytest.raises(ValueError, match="both --tls-cert and --tls-key"):
        check_transport(ServeConfig(database="sqlite:///x", tls_cert=Path("c.pem")))
    check_transport(ServeConfig(database="sqlite:///x", host="::1"))
    check_transport(
        ServeConfig(database="sqlite:///x", host="0.0.0.0", tls_cert=Path("c"), tls_key=Path("k"))
    )


def _serve(url: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "IFADIT_VAULT_DATABASE": url}
    return subprocess.Popen(
        [sys.executable, "-m", "ifadit_cli", "vault", "serve", *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_vault_serve_on_a_unix_socket(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'vault.sqlite3'}"
    init_vault(url)
    socket_path = tmp_path / "vault.sock"
    process = _serve(url, "--uds", str(socket_path))
    try:
        deadline = time.monotonic() + SERVE_TIMEOUT_S
        status = None
        while status is None and time.monotonic() < deadline and process.poll() is None:
            if socket_path.exists():
                try:
                    with VaultClient(f"unix://{socket_path}") as client:
                        status = client.status()
                except ServiceUnavailable:
                    pass
            time.sleep(0.1)
        assert status is not None, (
            process.stderr.read() if process.poll() is not None else "service did not answer"
        )
        assert status["sealed"] is True
        assert stat.S_IMODE(socket_path.stat().st_mode) == 0o600
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(SERVE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(SERVE_TIMEOUT_S)
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        process.stderr.close()


def test_vault_serve_refuses_plain_http_off_loopback_and_a_local_vault(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'vault.sqlite3'}"
    init_vault(url)
    refused = subprocess.run(
        [sys.executable, "-m", "ifadit_cli", "vault", "serve", "--host", "0.0.0.0", "--database", url],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=SERVE_TIMEOUT_S,
    )
    assert refused.returncode == 1
    assert (
        refused.stderr.strip().splitlines()[-1].startswith("Error: refusing to serve plain HTTP on 0.0.0.0")
    )

    local = f"sqlite:///{tmp_path / 'local.sqlite3'}"
    Vault.init(local, ADMIN, ADMIN_PASS, kdf=cheap_kdf()).close()
    refused = subprocess.run(
        [sys.executable, "-m", "ifadit_cli", "vault", "serve", "--database", local, "--port", "1"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=SERVE_TIMEOUT_S,
    )
    assert refused.returncode == 1 and "is a local (single-custodian) vault" in refused.stderr
