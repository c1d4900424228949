"""Run the vault service with uvicorn: refuse plain HTTP off loopback, load the vault sealed, auto-unseal by HSM.

The database URL comes from the service's own configuration (``--database`` or IFADIT_VAULT_DATABASE),
never from a client; workstations get only the service URL. Plain HTTP binds only a loopback address
or a Unix socket (bound here, 0600); any other address needs ``--tls-cert`` and ``--tls-key``.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from keyvault.service.auth import (
    DEFAULT_LOCKOUT,
    DEFAULT_MAX_FAILURES,
    DEFAULT_TOKEN_TTL,
    Authenticator,
    LoginLimiter,
    TokenStore,
)
from keyvault.service.errors import ServiceUnavailable
from keyvault.service.hsm import HsmConfig
from keyvault.service.jobs import DEFAULT_MAX_JOB_BYTES, JobRunner
from keyvault.service.state import ServiceState
from keyvault.service.urls import is_loopback

DATABASE_ENV = "IFADIT_VAULT_DATABASE"


@dataclass(frozen=True)
class ServeConfig:
    """How to run one service (every field has a safe default)."""

    database: str  # SQLAlchemy URL of the vault database
    host: str = "127.0.0.1"
    port: int = 8200
    uds: Path | None = None  # a Unix socket instead of host:port
    tls_cert: Path | None = None
    tls_key: Path | None = None
    hsm: HsmConfig | None = field(default=None, repr=False)
    token_ttl: timedelta = DEFAULT_TOKEN_TTL
    max_failures: int = DEFAULT_MAX_FAILURES
    lockout: timedelta = DEFAULT_LOCKOUT
    checkpoints: Path | None = None
    jobs: Mapping[str, JobRunner] = field(default_factory=dict)  # the file-carrying jobs it runs, by name
    max_job_bytes: int = DEFAULT_MAX_JOB_BYTES
    max_connections: int = 64  # beyond this many open connections the service answers 503 at once


def check_transport(config: ServeConfig) -> None:
    """Refuse plain HTTP on a non-loopback address, and half a TLS configuration."""
    if (config.tls_cert is None) != (config.tls_key is None):
        raise ValueError("TLS needs both --tls-cert and --tls-key")
    if config.uds is None and config.tls_cert is None and not is_loopback(config.host):
        raise ServiceUnavailable(
            f"refusing to serve plain HTTP on {config.host}: only loopback or a Unix socket may skip TLS",
            hint="pass --tls-cert and --tls-key, or bind 127.0.0.1",
        )


def build(config: ServeConfig) -> tuple[ServiceState, Authenticator]:
    """The sealed service state (auto-unsealed when the vault is HSM-held) and its authenticator."""
    check_transport(config)
    state = ServiceState(config.database, checkpoints=config.checkpoints, hsm=config.hsm)
    if state.mode == "hsm":
        state.auto_unseal()
    auth = Authenticator(
        state, TokenStore(config.token_ttl), LoginLimiter(config.max_failures, config.lockout)
    )
    return state, auth


def tcp_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` for uvicorn's ``sockets=`` (tests, benchmarks). Created with
    ``IPPROTO_TCP``: asyncio turns Nagle's algorithm off only on connections of such a socket, and with
    it on, every answer after the first on a kept-alive connection waits about 40 ms for a delayed ACK."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def unix_socket(path: Path) -> socket.socket:
    """A listening-ready Unix socket at ``path``, mode 0600 (uvicorn would make its own 0666)."""
    if path.exists():
        if not stat.S_ISSOCK(path.stat().st_mode):
            raise ServiceUnavailable(f"{path} exists and is not a socket", hint="pick another --uds path")
        path.unlink()  # a stale socket of an earlier run
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    return sock


def serve(config: ServeConfig) -> None:
    """Run until interrupted, then seal (forget the KEK) and release the database."""
    import uvicorn

    from keyvault.service.app import create_app

    state, auth = build(config)
    try:
        options: dict[str, Any] = {
            "log_level": "warning",
            "access_log": False,
            "server_header": False,
            "limit_concurrency": config.max_connections,
        }
        if config.uds is None:
            options.update(host=config.host, port=config.port)
        if config.tls_cert is not None:
            options.update(ssl_certfile=str(config.tls_cert), ssl_keyfile=str(config.tls_key))
        app = create_app(state, auth, jobs=config.jobs, max_job_bytes=config.max_job_bytes)
        server = uvicorn.Server(uvicorn.Config(app, **options))
        server.run(sockets=[unix_socket(config.uds)] if config.uds is not None else None)
    finally:
        state.close()
