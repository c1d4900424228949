"""Jobs to kill -9 at random points, started by a fork server so that each kill costs a fork, not an interpreter.

`python -m tests.reliability.kill_jobs` imports the pipeline and the vault once, loads the face detector,
then reads one JSON request per line: `["batch" | "append", args...]` forks a child that runs that job and
answers its pid; `["reap", pid]` waits for that child and answers its exit status (negative: the signal that
ended it). The child stays a zombie until reaped, so its pid cannot be reused while the test may still
send it SIGKILL. Each child opens the vault itself (nothing database-related crosses the fork), writes its
`ready` file once the vault is open, and its `done` file when the job ended ("done", or the traceback).

`JobServer` is the test side: `run(job, args, delay)` kills the job `delay` seconds after it is ready, or
lets it finish (delay None), and says which happened.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ifadit.faces.registry import get_detector
from ifadit.pipeline.anonymize import AnonymizeOptions
from ifadit.pipeline.batch import anonymize_paths
from ifadit.pipeline.resume import Journal
from ifadit.pipeline.staging import Staging
from keyvault import keys, ledger
from keyvault.vault import open_vault

REPO_ROOT = Path(__file__).resolve().parents[2]
OPTIONS = AnonymizeOptions(backend="blur")
BATCH_CASE = "C-17"


def batch_job(url: str, photos: str, out: str, checkpoint: int | None, ready: str) -> None:
    """Anonymize the folder `photos` into `out` as the lab's operator (checkpoint None: one batch)."""
    with open_vault(url, "olga", b"olga") as vault:
        Path(ready).write_text("ready")  # ready may be os.devnull: then "ready" comes later
        anonymize_paths(vault, [Path(photos)], Path(out), OPTIONS, case=BATCH_CASE, checkpoint=checkpoint)


def append_job(url: str, user: str, passphrase: str, rounds: int, ready: str) -> None:
    """`rounds` rounds of key issue, rotate, suspend, resume: four audit appends each."""
    with open_vault(url, user, passphrase.encode()) as vault:
        Path(ready).write_text("ready")
        for index in range(rounds):
            handle = keys.issue(vault, "C-kill", f"round {index}").handle
            keys.rotate(vault, handle)
            keys.suspend(vault, handle, reason="kill test")
            keys.resume(vault, handle, reason="kill test")


def stalled_batch_job(
    url: str, photos: str, out: str, checkpoint: int | None, stall: str, ready: str
) -> None:
    """`batch_job` that says it is ready and stalls for good at `stall`, a fixed point to kill it at.

    "append": inside the batch's transaction, as its audit entry is appended (the commit never happens);
    "journal": after the commit, before the journal is written; "publish": before the outputs are renamed.
    """
    owner, name = {
        "append": (ledger, "append"),
        "journal": (Journal, "save"),
        "publish": (Staging, "publish"),
    }[stall]
    original = getattr(owner, name)

    def stall_point(*args: Any, **kwargs: Any) -> Any:
        if stall == "append" and kwargs.get("action") != "anonymize":
            return original(*args, **kwargs)
        Path(ready).write_text("ready")
        time.sleep(300)

    setattr(owner, name, stall_point)  # in this forked child only
    batch_job(url, photos, out, checkpoint, ready=os.devnull)


JOBS: dict[str, Callable[..., None]] = {
    "batch": batch_job,
    "append": append_job,
    "stalled-batch": stalled_batch_job,
}


def _say(path: str, text: str) -> None:
    """Write `text` to `path` atomically: the test polls for the file and must never read it half-written."""
    Path(path + ".tmp").write_text(text)
    os.replace(path + ".tmp", path)


def _child(job: str, args: list[Any], done: str) -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # stdout is the server's answer channel
    try:
        JOBS[job](*args)
    except BaseException:
        _say(done, traceback.format_exc())
        os._exit(1)
    _say(done, "done")
    os._exit(0)


def main() -> None:
    """The fork server loop (see the module docstring)."""
    get_detector(OPTIONS.detector, thresh=OPTIONS.thresh, scale=OPTIONS.scale, upsample=OPTIONS.upsample)
    print("up", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request[0] == "reap":
            _, status = os.waitpid(request[1], 0)
            code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            print(code, flush=True)
            continue
        job, done, *args = request
        pid = os.fork()
        if pid == 0:
            _child(job, args, done)
        print(pid, flush=True)


@dataclass
class Ended:
    """How one job ended: `killed` by SIGKILL, or finished first; `seconds` from ready to the kill or the end."""

    killed: bool
    seconds: float


class JobServer:
    """The fork server as a subprocess; use as a context manager."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.kill_jobs"],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._answer() == "up", "the fork server did not start"

    def _answer(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, "the fork server died"
        return line.strip()

    def _ask(self, *request: Any) -> str:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return self._answer()

    def run(self, job: str, args: list[Any], delay: float | None) -> Ended:
        """Run `job`; SIGKILL it `delay` seconds after it is ready unless it finished first."""
        ready, done = self.folder / "ready", self.folder / "done"
        ready.unlink(missing_ok=True)
        done.unlink(missing_ok=True)
        pid = int(self._ask(job, str(done), *args, str(ready)))
        killed = False
        try:
            deadline = time.monotonic() + 60
            while not (ready.exists() or done.exists()):
                assert time.monotonic() < deadline, f"{job} job never got ready"
                time.sleep(0.005)
            start = time.monotonic()
            limit = start + (300 if delay is None else delay)
            while not done.exists() and time.monotonic() < limit:
                time.sleep(0.002)
            seconds = time.monotonic() - start
            if done.exists():
                assert done.read_text() == "done", f"{job} job failed:\n{done.read_text()}"
            else:
                assert delay is not None, f"{job} job did not finish in 300 s"
                os.kill(pid, signal.SIGKILL)  # running or a zombie: the pid is still this job's
                killed = True
        finally:
            code = int(self._ask("reap", pid))
        assert code in ((-signal.SIGKILL, 0) if killed else (0,)), f"{job} job exited {code}"
        return Ended(killed=code == -signal.SIGKILL, seconds=seconds)

    def __enter__(self) -> JobServer:
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


if __name__ == "__main__":
    main()
