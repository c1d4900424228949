"""A real vault service for tests: uvicorn on a loopback socket in a thread, bounded, always stopped."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import uvicorn

from keyvault.service.app import create_app
from keyvault.service.auth import Authenticator, LoginLimiter, TokenStore
from keyvault.service.hsm import HsmConfig
from keyvault.service.jobs import JobRunner
from keyvault.service.server import tcp_socket
from keyvault.service.setup import ServiceInit, init_service_vault
from keyvault.service.state import ServiceState
from tests.keyvault.support import ADMIN, ADMIN_PASS, cheap_kdf

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


@dataclass
class RunningService:
    url: str
    state: ServiceState
    auth: Authenticator


def init_vault(url: str, *, shares: int = 3, threshold: int = 2, hsm: HsmConfig | None = None) -> ServiceInit:
    """A service-mode vault at ``url`` with the test admin (cheap Argon2id)."""
    return init_service_vault(
        url, ADMIN, ADMIN_PASS, shares=shares, threshold=threshold, hsm=hsm, kdf=cheap_kdf()
    )


@contextmanager
def running_service(
    database: str,
    *,
    hsm: HsmConfig | None = None,
    token_ttl: timedelta = timedelta(minutes=5),
    max_failures: int = 3,
    lockout: timedelta = timedelta(minutes=10),
    clock: object | None = None,
    tls: tuple[Path, Path] | None = None,
    jobs: Mapping[str, JobRunner] | None = None,
) -> Iterator[RunningService]:
    """Serve ``database`` on 127.0.0.1 (an ephemeral port, TLS with ``tls`` = (cert, key)) until the block
    ends; ``jobs`` are the file-carrying jobs it runs (``ifadit vault serve`` registers ifadit's)."""
    kwargs = {"clock": clock} if clock is not None else {}
    state = ServiceState(database, hsm=hsm, **kwargs)  # type: ignore[arg-type]
    if state.mode == "hsm":
        state.auto_unseal()
    auth = Authenticator(state, TokenStore(token_ttl), LoginLimiter(max_failures, lockout))
    sock = tcp_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(state, auth, jobs=jobs),
        log_level="warning",
        access_log=False,
        limit_concurrency=16,
        timeout_keep_alive=2,
        ssl_certfile=str(tls[0]) if tls else None,
        ssl_keyfile=str(tls[1]) if tls else None,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError("the test vault service did not start")
        time.sleep(0.02)
    try:
        yield RunningService(url=f"{'https' if tls else 'http'}://127.0.0.1:{port}", state=state, auth=auth)
    finally:
        server.should_exit = True
        thread.join(STOP_TIMEOUT_S)
        sock.close()
        state.close()
