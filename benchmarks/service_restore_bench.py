"""Benchmark: an interactive model restore through the vault service, with the model warm (issue 25).

One 1 MP photo (scikit-image's astronaut scaled to 1024 x 1024) is anonymized with the ifadit backend
through a service-mode vault served on 127.0.0.1 (uvicorn in a thread of this process, ifadit's jobs
registered, approval required). Then, best and median of --repeat runs, each restore under a new
request that an approver approved:
  work     the restore's own work alone, in this process with the model loaded: read and check the
           anonymized file, run the model backwards on the manifest's faces, write the output
           (`inspect_input` + `restore_into`), no vault, no HTTP, no process start
  service  one restore job sent by an in-process client (`VaultClient.run_job`): upload, the service's
           work (request check, key use, audit entry, the same restore) and download on loopback
  cli      `ifadit restore --vault URL --request ID` as a user types it: a new process (the package's
           bytecode compiled first, as an install leaves it), the request lookup, the restore job,
           publishing the output and its report
Prints each against `work` (best against best, median against median; the medians are the steadier on a
shared machine): issue 25 asks cli <= 1.5x work and under 1 s of service time.
Usage: .venv/bin/python benchmarks/service_restore_bench.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import uvicorn
from skimage import data, transform

from ifadit.media.digests import file_sha256
from ifadit.media.image import write_image
from ifadit.pipeline.anonymize import AnonymizeOptions
from ifadit.pipeline.remote import job_name
from ifadit.pipeline.remote_anonymize import anonymize_remote
from ifadit.pipeline.restore_item import inspect_input, restore_into
from ifadit.pipeline.restore_plan import RestoreOptions
from ifadit.pipeline.service_jobs import JOBS
from keyvault import keys
from keyvault.envelope import KdfParams
from keyvault.records import RequestFile
from keyvault.service import tokenfile
from keyvault.service.api import NewRequest, PolicyChange
from keyvault.service.app import create_app
from keyvault.service.client import VaultClient
from keyvault.service.local_api import LocalAPI
from keyvault.service.server import tcp_socket
from keyvault.service.setup import init_service_vault
from keyvault.service.state import ServiceState

ROOT = Path(__file__).resolve().parents[1]
CASE = "C-BENCH"
PEOPLE = {"olga": ["operator", "investigator"], "ann": ["approver"]}
CHEAP_KDF = KdfParams.generate(memory_cost=8192, iterations=1, lanes=1)  # logins are not what is timed


def passphrase(user: str) -> bytes:
    return f"{user} bench passphrase".encode()


def photo(folder: Path) -> Path:
    """The astronaut at 1024 x 1024 (1.05 MP) as a PNG."""
    pixels = transform.resize(data.astronaut(), (1024, 1024), order=1, anti_aliasing=False)
    path = folder / "photo.png"
    write_image(path, np.clip(pixels * 255 + 0.5, 0, 255).astype(np.uint8))
    return path


def serve(state: ServiceState) -> tuple[str, uvicorn.Server, threading.Thread]:
    sock = tcp_socket("127.0.0.1", 0)
    config = uvicorn.Config(create_app(state, jobs=JOBS), log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", server, thread


def set_up(folder: Path) -> tuple[ServiceState, str]:
    """A service-mode vault, unsealed, with an operator-investigator, an approver and the case key."""
    database = str(folder / "vault.sqlite3")
    init = init_service_vault(database, "admin", passphrase("admin"), shares=3, threshold=2, kdf=CHEAP_KDF)
    state = ServiceState(database, checkpoints=folder / "checkpoints")
    for share in init.shares[:2]:
        state.submit_share(share)
    with state.vault_for("admin") as vault:
        api = LocalAPI(vault)
        for user, roles in PEOPLE.items():
            api.add_user(user, roles, passphrase(user))
        api.set_policy(PolicyChange(require_approval=True, approvals=1))
        handle = api.issue_key(CASE, "restore speed", None).handle
    return state, handle


def approved_request(url: str, source: Path) -> str:
    """A model-restore request for `source`, filed by olga and approved by ann."""
    files = (RequestFile(name=str(source), sha256=file_sha256(source)),)
    with VaultClient(url) as olga, VaultClient(url) as ann:
        olga.login("olga", passphrase("olga"))
        ann.login("ann", passphrase("ann"))
        request = olga.file_request(NewRequest(case=CASE, reason="bench", files=files, mode="model"))
        ann.approve_request(request.handle)
    return request.handle


def times(repeat: int, run: Callable[[int], object]) -> list[float]:
    measured = []
    for number in range(repeat):
        start = time.perf_counter()
        run(number)
        measured.append(time.perf_counter() - start)
    return measured


def work_alone(state: ServiceState, handle: str, source: Path, folder: Path, repeat: int) -> list[float]:
    """The restore's own work in this process, model warm (the key unsealed once, outside the timing)."""
    options = RestoreOptions(case=CASE, reason="bench")
    with state.vault_for("olga") as vault:
        key = keys.unseal_for_use(vault, handle, purpose="anonymize")

        def run(number: int) -> None:
            inspection = inspect_input(vault, source, options)
            restore_into(folder / f"work-{number}.png", inspection, key, options)

        run(-1)  # loads the model and the detector
        return times(repeat, run)


def through_service(url: str, source: Path, folder: Path, repeat: int) -> list[float]:
    requests = [approved_request(url, source) for _ in range(repeat)]
    name = job_name(0, source)
    with VaultClient(url) as client:
        client.login("olga", passphrase("olga"))

        def run(number: int) -> None:
            params = {
                "options": {"case": CASE, "reason": "bench"},
                "files": [name],
                "single_output": "00000_output.png",
                "request": requests[number],
            }
            client.run_job("restore", params, {name: source}, folder / f"job-{number}")

        return times(repeat, run)


def through_cli(url: str, source: Path, folder: Path, repeat: int) -> list[float]:
    for package in ("ifadit", "keyvault", "cli"):  # bytecode as `pip install` leaves it (never written
        compileall.compile_dir(ROOT / package, quiet=1)  # under PYTHONDONTWRITEBYTECODE, as set here)
    requests = [approved_request(url, source) for _ in range(repeat)]
    env = {**os.environ, "XDG_DATA_HOME": str(folder / "home"), "PYTHONPATH": str(ROOT)}
    os.environ["XDG_DATA_HOME"] = env["XDG_DATA_HOME"]
    with VaultClient(url) as client:
        token, expires = client.login("olga", passphrase("olga"))
    tokenfile.save(tokenfile.StoredToken(url=url, user="olga", token=token, expires=expires))

    def run(number: int) -> None:
        command = [sys.executable, "-m", "ifadit_cli", "restore", str(source), "-o", str(folder / f"cli-{number}.png"),
                   "--case", CASE, "--reason", "bench", "--request", requests[number], "--vault", url, "--user", "olga"]  # fmt: skip
        subprocess.run(command, env=env, check=True, capture_output=True, cwd=ROOT)

    return times(repeat, run)


def line(name: str, measured: list[float], work: list[float]) -> str:
    """Best and median of `measured`, each against the same statistic of the work alone."""
    best, median = min(measured), statistics.median(measured)
    return (
        f"{name:<8} best {best:6.2f} s  median {median:6.2f} s  "
        f"vs work: best {best / min(work):5.2f}x  median {median / statistics.median(work):5.2f}x"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ifadit-restore-bench-") as name:
        folder = Path(name)
        state, handle = set_up(folder)
        url, server, thread = serve(state)
        try:
            source = folder / "anonymized.png"
            with VaultClient(url) as client:
                client.login("olga", passphrase("olga"))
                anonymize_remote(
                    client, [photo(folder)], source, AnonymizeOptions(backend="ifadit"), key=handle
                )
            work = work_alone(state, handle, source, folder, args.repeat)
            service = through_service(url, source, folder, args.repeat)
            cli = through_cli(url, source, folder, args.repeat)
        finally:
            server.should_exit = True
            thread.join(10)
            state.close()
    print(
        f"model restore of one 1024 x 1024 photo, model warm, {args.repeat} runs each, {datetime.now(UTC):%Y-%m-%d}"
    )
    for name, measured in (("work", work), ("service", service), ("cli", cli)):
        print(line(name, measured, work))
    ratio = statistics.median(cli) / statistics.median(work)
    print(
        f"targets (issue 25): cli <= 1.5x work (median {ratio:.2f}x); service < 1 s (median {statistics.median(service):.2f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
