"""Load and kill -9 machinery for the vault service (issue 25), shared by ``service_load_bench.py`` and
``tests/keyvault/service/test_load_faults.py``.

1. The service runs as a real child process (``python -m ifadit_cli vault serve``) on 127.0.0.1 at an
   ephemeral port, on a database the caller prepared (SQLite file or fresh PostgreSQL schema), with its
   checkpoint file and data folder in the run's own folder.
2. It is unsealed 2 of 3 through the API; the admin adds four investigators and two approvers (quorum 2).
3. Each client thread has its own ``VaultClient`` and loops over the operations of its kind
   (``OPERATIONS``: issue keys, file and approve requests, anonymize small photos with sealed originals
   as service jobs), keeping every acknowledged result (``Ack``) and its latency.
4. The crash phase SIGKILLs the service at seeded random moments under the same load; after each kill it
   restarts on the same database, unseals, logs everyone in again, checks that everything acknowledged
   is still there (``Snapshot``) and that `audit verify` through the service says intact. Clients count
   what fails in the kill window as not acknowledged and carry on once the service is back.
5. At the end every acknowledged action must appear exactly once in the audit log (``check_audit``).

Loopback only, bounded in count and time; the service process is killed in ``finally`` whatever
happens. Not imported by the installed package: the benchmark imports it from its own folder, the test
as ``benchmarks.service_load``.
"""

from __future__ import annotations

import math
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import numpy as np
from skimage import data
from sqlalchemy import create_engine, text

from ifadit.media.digests import list_digest
from ifadit.media.image import write_image
from ifadit.pipeline.anonymize import AnonymizeOptions
from ifadit.pipeline.batch import anonymize_paths
from ifadit.pipeline.remote_anonymize import anonymize_remote
from keyvault import access
from keyvault.audit import AuditEntry
from keyvault.envelope import KdfParams
from keyvault.errors import NotFound, VaultError
from keyvault.records import KeyInfo, RequestFile, RequestInfo
from keyvault.service.api import NewRequest, PolicyChange, VaultAPI
from keyvault.service.client import VaultClient
from keyvault.service.errors import ServiceSealed, ServiceUnavailable, TokenError
from keyvault.service.local_api import LocalAPI
from keyvault.service.setup import init_service_vault
from keyvault.vault import CHECKPOINTS_ENV, Vault, open_vault

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
SHARES, THRESHOLD = 3, 2
ADMIN = "admin"
USERS: dict[str, tuple[str, ...]] = {  # added by the admin through the service
    "inv1": ("operator", "investigator"),
    "inv2": ("operator", "investigator"),
    "inv3": ("operator", "investigator"),
    "inv4": ("operator", "investigator"),
    "appr1": ("approver",),
    "appr2": ("approver",),
}
KIND_USERS: dict[str, tuple[str, ...]] = {
    "issuer": (ADMIN,),  # only an admin issues keys
    "investigator": ("inv1", "inv2", "inv3", "inv4"),
    "approver": ("appr1", "appr2"),
}
CLIENT_KINDS = ("issuer", "investigator", "approver", "investigator")  # client i is CLIENT_KINDS[i % 4]
QUORUM = 2  # distinct approvers per restore request: both approvers approve every request
CASES = 40  # keys and requests spread over this many cases
START_TIMEOUT_S = 90.0  # a cold interpreter on a busy two-core machine
STOP_TIMEOUT_S = 10.0
CLIENT_TIMEOUT_S = 30.0
BACKOFF_S = 0.05  # after a refused connection or a sealed answer
IDLE_S = 0.01  # when an approver has nothing to approve yet


def passphrase(user: str) -> bytes:
    return f"{user} load-test passphrase".encode()


# ---------------------------------------------------------------- what is acknowledged, and where it must show


@dataclass(frozen=True)
class Ack:
    """One acknowledged operation: the service answered, so what it did must persist."""

    operation: str
    actor: str
    ref: str  # the handle it names: key handle, request handle
    case: str


@dataclass(frozen=True)
class Snapshot:
    """Every key and restore request the service holds now (read as the admin)."""

    keys: dict[str, KeyInfo]
    requests: dict[str, RequestInfo]

    @classmethod
    def read(cls, api: VaultAPI) -> Snapshot:
        return cls(
            keys={k.handle: k for k in api.list_keys(None, None)},
            requests={r.handle: r for r in api.list_requests(None, None)},
        )


def entry_ref(entry: AuditEntry) -> str | None:
    """The handle an audit entry is about: the request it names, else its key."""
    request = entry.details.get("request")
    return str(request) if request is not None else entry.key_handle


@dataclass(frozen=True)
class Operation:
    """One thing a client does; ``action`` and ``persisted`` say where an acknowledged run must show."""

    name: str
    kind: str  # the clients that run it (CLIENT_KINDS)
    weight: int  # relative frequency among its kind's operations
    run: Callable[[Worker], Ack | None]  # None: nothing to do right now (no request left to approve)
    action: str | None = None  # audit action an acknowledged run leaves exactly once (None: a read)
    persisted: Callable[[Snapshot, Ack], str | None] | None = None  # the loss found, or None
    ref_of: Callable[[AuditEntry], str | None] = entry_ref  # an entry's ``Ack.ref``


def issue_key(worker: Worker) -> Ack:
    case = f"LOAD-{worker.rng.randrange(CASES):03d}"
    info = worker.api.issue_key(case, "load test", None)
    worker.board.add_key(info.handle, case)
    return Ack("issue_key", worker.user, info.handle, case)


def show_key(worker: Worker) -> Ack | None:
    known = worker.board.some_key(worker.rng)
    if known is None:
        return None
    handle, case = known
    info = worker.call_on_acknowledged(lambda: worker.api.show_key(handle), f"key {handle}")
    if info.state != "active" or info.case_id != case:
        worker.board.problem(
            f"key {handle} shows {info.state} in {info.case_id}, acknowledged active in {case}"
        )
    return Ack("show_key", worker.user, handle, case)


def file_request(worker: Worker) -> Ack:
    rng, key = worker.rng, worker.board.some_key(worker.rng)
    handle, case = (
        key if key is not None and rng.random() < 0.5 else (None, f"LOAD-{rng.randrange(CASES):03d}")
    )
    files = tuple(
        RequestFile(name=f"evidence/c{worker.index}-{n}.png", sha256=rng.randbytes(32).hex())
        for n in range(rng.randint(1, 3))
    )
    new = NewRequest(case=case, reason="load test", files=files, mode="exact", key=handle)
    info = worker.api.file_request(new)
    worker.board.add_request(info.handle, case)
    return Ack("file_request", worker.user, info.handle, case)


def list_requests(worker: Worker) -> Ack | None:
    known = worker.board.some_request(worker.rng)
    if known is None:
        return None
    handle, case = known
    if handle not in {r.handle for r in worker.api.list_requests(case, None)}:
        worker.board.problem(f"request {handle} acknowledged but not listed in case {case}")
    return Ack("list_requests", worker.user, handle, case)


def approve_request(worker: Worker) -> Ack | None:
    claimed = worker.board.claim(worker.user)
    if claimed is None:
        return None
    handle, case = claimed
    worker.api.approve_request(handle)
    return Ack("approve", worker.user, handle, case)


def show_request(worker: Worker) -> Ack | None:
    known = worker.board.some_request(worker.rng)
    if known is None:
        return None
    handle, case = known
    worker.call_on_acknowledged(lambda: worker.api.show_request(handle), f"request {handle}")
    return Ack("show_request", worker.user, handle, case)


def key_persisted(snapshot: Snapshot, ack: Ack) -> str | None:
    info = snapshot.keys.get(ack.ref)
    if info is None:
        return f"key {ack.ref} (issued by {ack.actor}) is gone"
    if info.state != "active" or info.case_id != ack.case:
        return f"key {ack.ref} is {info.state} in {info.case_id}, acknowledged active in {ack.case}"
    return None


def request_persisted(snapshot: Snapshot, ack: Ack) -> str | None:
    info = snapshot.requests.get(ack.ref)
    if info is None:
        return f"request {ack.ref} (filed by {ack.actor}) is gone"
    if info.requester != ack.actor or info.case_id != ack.case:
        return f"request {ack.ref} names {info.requester} in {info.case_id}, acknowledged {ack.actor} in {ack.case}"
    return None


def approval_persisted(snapshot: Snapshot, ack: Ack) -> str | None:
    info = snapshot.requests.get(ack.ref)
    if info is None or ack.actor not in {a.approver for a in info.approvals}:
        return f"approval of {ack.ref} by {ack.actor} is gone"
    return None


CORE_OPERATIONS: tuple[Operation, ...] = (
    Operation("issue_key", "issuer", 3, issue_key, "key.issue", key_persisted),
    Operation("show_key", "issuer", 1, show_key),
    Operation("file_request", "investigator", 3, file_request, "restore.request", request_persisted),
    Operation("list_requests", "investigator", 1, list_requests),
    Operation("approve", "approver", 3, approve_request, "restore.approve", approval_persisted),
    Operation("show_request", "approver", 1, show_request),
)


def _small_face(rng: random.Random) -> np.ndarray:
    """The astronaut's head (200 x 200 px) with a few random pixels in a corner: every output differs."""
    pixels = np.array(data.astronaut()[60:260, 80:280])
    pixels[:4, :4] = np.frombuffer(rng.randbytes(48), dtype=np.uint8).reshape(4, 4, 3)
    return pixels


def anonymize_small_image(worker: Worker) -> Ack | None:
    """Pixelate one small photo with its original sealed under a case key: through the service (a job),
    or on the local vault for the baseline. Its Ack names the run's output digest, as its entry does."""
    known = worker.board.some_key(worker.rng)
    if known is None:
        return None
    handle, case = known
    with tempfile.TemporaryDirectory(prefix="ifadit-load-") as folder:
        source, target = Path(folder) / "in.png", Path(folder) / "out.png"
        write_image(source, _small_face(worker.rng))
        if isinstance(worker.api, LocalAPI):
            report = anonymize_paths(worker.api.vault, [source], target, SMALL_IMAGE_OPTIONS, key=handle)
        else:
            report = anonymize_remote(worker.api, [source], target, SMALL_IMAGE_OPTIONS, key=handle)
    return Ack("anonymize", worker.user, list_digest(i.output_sha256 or "" for i in report.items), case)


def anonymize_ref(entry: AuditEntry) -> str | None:
    return entry.digests.get("outputs")


SMALL_IMAGE_OPTIONS = AnonymizeOptions(backend="pixelate", seal_original=True)
JOB_OPERATIONS: tuple[Operation, ...] = (
    Operation("anonymize", "investigator", 1, anonymize_small_image, "anonymize", ref_of=anonymize_ref),
)
OPERATIONS: tuple[Operation, ...] = CORE_OPERATIONS + JOB_OPERATIONS
BY_NAME = {op.name: op for op in OPERATIONS}


# ---------------------------------------------------------------- what the clients share


@dataclass
class PhaseStats:
    """Acknowledged operations of one phase: latencies per operation, failures by kind, wall time."""

    seconds: float
    latency: dict[str, list[float]]
    failures: Counter[str]

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.latency.values())

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0


class Board:
    """What the clients share: tokens and the up/down gate, acknowledged results, pools, failures."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._up = threading.Event()
        self.stop = threading.Event()
        self.tokens: dict[str, str] = {}
        self.acks: list[Ack] = []
        self.problems: list[str] = []
        self._latency: defaultdict[str, list[float]] = defaultdict(list)
        self._failures: Counter[str] = Counter()
        self._keys: list[tuple[str, str]] = []
        self._requests: list[tuple[str, str]] = []
        self._unclaimed: dict[str, deque[tuple[str, str]]] = {u: deque() for u in KIND_USERS["approver"]}

    def up(self, tokens: dict[str, str]) -> None:
        self.tokens = dict(tokens)
        self._up.set()

    def down(self) -> None:
        self._up.clear()

    def wait_up(self, timeout: float) -> bool:
        return self._up.wait(timeout)

    def acknowledged(self, ack: Ack, seconds: float) -> None:
        with self._lock:
            self.acks.append(ack)
            self._latency[ack.operation].append(seconds)

    def failed(self, operation: str, exc: BaseException) -> None:
        with self._lock:
            self._failures[f"{operation}: {type(exc).__name__}"] += 1

    def failure_count(self) -> int:
        with self._lock:
            return sum(self._failures.values())

    def problem(self, text: str) -> None:
        with self._lock:
            self.problems.append(text)

    def take_stats(self, seconds: float) -> PhaseStats:
        """The phase's latencies and failures so far; the next phase starts from zero."""
        with self._lock:
            stats = PhaseStats(seconds, dict(self._latency), Counter(self._failures))
            self._latency, self._failures = defaultdict(list), Counter()
        return stats

    def add_key(self, handle: str, case: str) -> None:
        with self._lock:
            self._keys.append((handle, case))

    def add_request(self, handle: str, case: str) -> None:
        with self._lock:
            self._requests.append((handle, case))
            for queue in self._unclaimed.values():
                queue.append((handle, case))

    def some_key(self, rng: random.Random) -> tuple[str, str] | None:
        with self._lock:
            return rng.choice(self._keys) if self._keys else None

    def some_request(self, rng: random.Random) -> tuple[str, str] | None:
        with self._lock:
            return rng.choice(self._requests) if self._requests else None

    def claim(self, approver: str) -> tuple[str, str] | None:
        """The oldest acknowledged request ``approver`` has not tried yet (each is tried once)."""
        with self._lock:
            queue = self._unclaimed[approver]
            return queue.popleft() if queue else None


class Worker:
    """One client: its user, its own API object, a seeded RNG, and the operations of its kind."""

    def __init__(
        self,
        index: int,
        kind: str,
        user: str,
        api: VaultAPI,
        board: Board,
        seed: int,
        after_write: Callable[[], object] | None = None,
    ) -> None:
        self.index, self.kind, self.user, self.api, self.board = index, kind, user, api, board
        self.ops = [op for op in OPERATIONS if op.kind == kind]
        self.weights = [op.weight for op in self.ops]
        self.rng = random.Random(f"{seed}/{index}")
        self.after_write = after_write  # the local baseline: the checkpoint a service request signs
        self.in_flight: str | None = None

    def call_on_acknowledged(self, read: Callable[[], T], what: str) -> T:
        """``read()`` of something acknowledged earlier: NotFound is a loss, not a refusal."""
        try:
            return read()
        except NotFound:
            self.board.problem(f"{what} was acknowledged but is not found")
            raise

    def step(self) -> None:
        """One operation of this client's kind, timed; a failure is recorded as not acknowledged."""
        op = self.rng.choices(self.ops, self.weights)[0]
        self.in_flight = op.name
        start = time.perf_counter()
        try:
            ack = op.run(self)
            if ack is not None and op.action is not None and self.after_write is not None:
                self.after_write()
        except VaultError as exc:
            self.board.failed(op.name, exc)
            if isinstance(exc, ServiceUnavailable | ServiceSealed | TokenError):
                time.sleep(BACKOFF_S)
            return
        except Exception as exc:  # a bug in this harness or an unexpected answer: never silent
            self.board.failed(op.name, exc)
            self.board.problem(f"client {self.index} {op.name}: unexpected {type(exc).__name__}: {exc}")
            return
        finally:
            self.in_flight = None
        if ack is None:
            time.sleep(IDLE_S)
            return
        self.board.acknowledged(ack, time.perf_counter() - start)

    def run(self) -> None:
        """Thread body: step while the board is up, until it says stop."""
        while not self.board.stop.is_set():
            if not self.board.wait_up(0.1):
                continue
            if isinstance(self.api, VaultClient):
                self.api.token = self.board.tokens.get(self.user)
            self.step()


def make_workers(
    clients: int,
    board: Board,
    seed: int,
    api_for: Callable[[str], tuple[VaultAPI, Callable[[], object] | None]],
) -> list[Worker]:
    """``clients`` workers of the kinds in CLIENT_KINDS, each kind's users taken in turn."""
    workers, taken = [], Counter[str]()
    for index in range(clients):
        kind = CLIENT_KINDS[index % len(CLIENT_KINDS)]
        user = KIND_USERS[kind][taken[kind] % len(KIND_USERS[kind])]
        taken[kind] += 1
        api, after_write = api_for(user)
        workers.append(Worker(index, kind, user, api, board, seed, after_write))
    return workers


@contextmanager
def running(workers: Sequence[Worker], board: Board) -> Iterator[None]:
    """The workers' threads, stopped and joined when the block ends."""
    board.stop.clear()
    threads = [threading.Thread(target=w.run, name=f"load-client-{w.index}", daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        board.stop.set()
        for thread in threads:
            thread.join(CLIENT_TIMEOUT_S + 5)


# ---------------------------------------------------------------- the service process


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class ServiceProcess:
    """`ifadit vault serve` as a child process on 127.0.0.1; ``kill`` is SIGKILL, ``stop`` SIGTERM."""

    def __init__(self, database: str, folder: Path, port: int) -> None:
        self.url = f"http://{HOST}:{port}"
        self.args = [sys.executable, "-m", "ifadit_cli", "vault", "serve", "--database", database]
        self.args += ["--host", HOST, "--port", str(port)]
        paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(paths),
            CHECKPOINTS_ENV: f"{folder}{os.sep}",
            "XDG_DATA_HOME": str(folder / "home"),
        }
        self.log = folder / "service.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start the service and wait until it answers; the seconds it took."""
        start = time.perf_counter()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.args, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        with VaultClient(self.url, timeout=2.0) as probe:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"the vault service exited ({self.process.returncode}); see {self.log}"
                    )
                try:
                    probe.status()
                    return time.perf_counter() - start
                except ServiceUnavailable:
                    if time.perf_counter() - start > START_TIMEOUT_S:
                        raise RuntimeError(
                            f"the vault service did not answer in {START_TIMEOUT_S:.0f} s"
                        ) from None
                    time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL (no shutdown, no seal, no checkpoint) and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(STOP_TIMEOUT_S)

    def stop(self) -> None:
        """SIGTERM (uvicorn shuts down and the state seals), SIGKILL if it lingers."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill()


def unseal(url: str, shares: Sequence[str], rng: random.Random) -> None:
    """Submit THRESHOLD of the shares, drawn at random, through the API."""
    with VaultClient(url) as client:
        for share in rng.sample(list(shares), THRESHOLD):
            status = client.unseal(share)
        if status["sealed"]:
            raise RuntimeError(f"still sealed after {THRESHOLD} shares: {status}")


def login_all(url: str) -> dict[str, str]:
    """A fresh token for every user (a restart logged everyone out)."""
    tokens = {}
    for user in (ADMIN, *USERS):
        with VaultClient(url) as client:
            tokens[user] = client.login(user, passphrase(user))[0]
    return tokens


def add_users(url: str) -> None:
    """The admin adds the investigators and approvers and sets the quorum."""
    with VaultClient(url) as admin:
        admin.login(ADMIN, passphrase(ADMIN))
        for name, roles in USERS.items():
            admin.add_user(name, list(roles), passphrase(name))
        admin.set_policy(PolicyChange(require_approval=True, approvals=QUORUM))


# ---------------------------------------------------------------- checks


@dataclass
class AuditCheck:
    """Acknowledged actions against the audit log: counts by action, losses, duplicates, sequence faults."""

    entries: int
    acked: Counter[str]  # acknowledged, by audit action
    logged: Counter[str]  # "ok" entries of the same actions (more: done but never acknowledged)
    lost: list[str]
    duplicated: list[str]
    sequence: list[str]

    @property
    def problems(self) -> list[str]:
        return (
            [f"lost: {t}" for t in self.lost] + [f"duplicated: {t}" for t in self.duplicated] + self.sequence
        )


def check_audit(entries: Sequence[AuditEntry], acks: Sequence[Ack]) -> AuditCheck:
    """Every acknowledged action's entry exactly once (by action, actor and handle); seq 1..n, no repeats."""
    seqs = [entry.seq for entry in entries]
    sequence = []
    if len(set(seqs)) != len(seqs):
        repeated = sorted(s for s, n in Counter(seqs).items() if n > 1)
        sequence.append(f"sequence numbers repeated: {repeated[:10]}")
    if sorted(set(seqs)) != list(range(1, len(set(seqs)) + 1)):
        sequence.append("sequence numbers are not 1..n without gaps")
    by_action = {op.action: op for op in OPERATIONS if op.action is not None}
    logged, seen = Counter[str](), Counter[tuple[str, str | None, str | None]]()
    for entry in entries:
        op = by_action.get(entry.action)
        if op is not None and entry.outcome == "ok":
            logged[entry.action] += 1
            seen[(entry.action, entry.actor, op.ref_of(entry))] += 1
    duplicated = [f"{a} by {u} of {r}: {n} entries" for (a, u, r), n in seen.items() if n > 1]
    acked, lost = Counter[str](), []
    for ack in acks:
        action = BY_NAME[ack.operation].action
        if action is not None:
            acked[action] += 1
            if seen[(action, ack.actor, ack.ref)] == 0:
                lost.append(f"{action} by {ack.actor} of {ack.ref} acknowledged, not in the audit log")
    return AuditCheck(len(entries), acked, logged, lost, duplicated, sequence)


def check_persisted(api: VaultAPI, acks: Sequence[Ack]) -> list[str]:
    """What of ``acks`` the service no longer holds (keys with their state, requests with their approvals)."""
    snapshot = Snapshot.read(api)
    found = []
    for ack in acks:
        check = BY_NAME[ack.operation].persisted
        problem = check(snapshot, ack) if check is not None else None
        if problem is not None:
            found.append(problem)
    return found


def verify_audit(api: VaultClient) -> tuple[str, list[str]]:
    """`audit verify` through the service: its summary, and the failure as a problem."""
    try:
        summary = api.verify_audit()
    except VaultError as exc:
        return f"FAILED: {exc.args[0]}", [f"audit verify: {type(exc).__name__}: {exc.args[0]}"]
    return summary, [] if summary.startswith("audit log intact") else [f"audit verify: {summary}"]


# ---------------------------------------------------------------- phases


@dataclass(frozen=True)
class LoadPlan:
    """How much load and how many kills (every count and time bounded)."""

    clients: int = 16
    seconds: float = 60.0  # the steady load phase
    kills: int = 20  # SIGKILLs in the crash phase
    seed: int = 0
    kill_gap_s: tuple[float, float] = (0.5, 3.0)  # load before each kill, drawn uniformly (seeded)


@dataclass(frozen=True)
class KillReport:
    """One kill: when, what was in flight, what failed until the service was back, the checks after it."""

    index: int
    after_s: float  # load since the previous restart
    in_flight: int  # client operations in flight at the kill
    unacknowledged: int  # operations that failed from the kill to the restart (not acknowledged)
    acknowledged: int  # acknowledged operations so far (all checked after the restart)
    restart_s: float  # kill → restarted, unsealed, logged in, checked
    verify: str
    problems: list[str]


@dataclass
class LoadReport:
    """The whole run: the steady phase, the crash phase and its kills, the final audit check."""

    load: PhaseStats
    crash: PhaseStats
    kills: list[KillReport]
    audit: AuditCheck
    verify: str
    problems: list[str] = field(default_factory=list)


def kill_and_recover(
    service: ServiceProcess,
    board: Board,
    workers: Sequence[Worker],
    shares: Sequence[str],
    rng: random.Random,
) -> tuple[float, int, int, float, str, list[str]]:
    """SIGKILL under load, restart on the same database, unseal, log in, check; the clients resume after."""
    in_flight = sum(1 for w in workers if w.in_flight is not None)
    failed_before = board.failure_count()
    service.kill()
    board.down()
    start = time.perf_counter()
    service.start()
    unseal(service.url, shares, rng)
    tokens = login_all(service.url)
    time.sleep(BACKOFF_S * 4)  # let the clients caught in the kill window reach the gate
    acks = list(board.acks)
    with VaultClient(service.url, token=tokens[ADMIN]) as admin:
        problems = check_persisted(admin, acks)
        summary, failed = verify_audit(admin)
    restart = time.perf_counter() - start
    unacknowledged = board.failure_count() - failed_before
    board.up(tokens)
    return restart, in_flight, unacknowledged, len(acks), summary, problems + failed


def crash_phase(
    service: ServiceProcess, board: Board, workers: Sequence[Worker], shares: Sequence[str], plan: LoadPlan
) -> tuple[PhaseStats, list[KillReport]]:
    """``plan.kills`` SIGKILLs at seeded random moments of the load; each followed by restart and checks."""
    rng = random.Random(f"{plan.seed}/kills")
    reports: list[KillReport] = []
    start = time.perf_counter()
    with running(workers, board):
        for index in range(plan.kills):
            gap = rng.uniform(*plan.kill_gap_s)
            time.sleep(gap)
            restart, in_flight, unacked, acked, summary, problems = kill_and_recover(
                service, board, workers, shares, rng
            )
            reports.append(KillReport(index + 1, gap, in_flight, unacked, acked, restart, summary, problems))
            for problem in problems:
                board.problem(f"after kill {index + 1}: {problem}")
    return board.take_stats(time.perf_counter() - start), reports


def steady_phase(board: Board, workers: Sequence[Worker], seconds: float) -> PhaseStats:
    """The workers' load for ``seconds``, no faults."""
    board.take_stats(0.0)
    start = time.perf_counter()
    with running(workers, board):
        time.sleep(seconds)
    return board.take_stats(time.perf_counter() - start)


def run_service_load(
    url: str, folder: Path, plan: LoadPlan, say: Callable[[str], object] = print
) -> LoadReport:
    """Create a service vault at ``url``, serve it as a child process, load it, kill it; the report."""
    rng = random.Random(f"{plan.seed}/shares")
    shares = init_service_vault(
        url, ADMIN, passphrase(ADMIN), shares=SHARES, threshold=THRESHOLD, checkpoints=f"{folder}{os.sep}"
    ).shares
    service = ServiceProcess(url, folder, free_port())
    board = Board()
    workers: list[Worker] = []
    try:
        say(f"service started in {service.start():.1f} s at {service.url}")
        unseal(service.url, shares, rng)
        add_users(service.url)
        board.up(login_all(service.url))
        workers = make_workers(
            plan.clients,
            board,
            plan.seed,
            lambda _user: (VaultClient(service.url, timeout=CLIENT_TIMEOUT_S), None),
        )
        say(f"steady load: {plan.clients} clients for {plan.seconds:g} s")
        load = steady_phase(board, workers, plan.seconds)
        say(f"crash phase: {plan.kills} kills")
        crash, kills = crash_phase(service, board, workers, shares, plan)
        with VaultClient(service.url, token=board.tokens[ADMIN]) as admin:
            lost = check_persisted(admin, board.acks)
            audit = check_audit(admin.audit_entries(None), board.acks)
            summary, failed = verify_audit(admin)
        service.stop()
    finally:
        service.kill()
        for worker in workers:
            if isinstance(worker.api, VaultClient):
                worker.api.close()
    problems = board.problems + [f"at the end: {p}" for p in lost + audit.problems + failed]
    return LoadReport(load, crash, kills, audit, summary, problems)


# ---------------------------------------------------------------- the in-run baseline


def cheap_kdf() -> KdfParams:
    """Small Argon2id for the baseline's keyslots: unlock is not what the baseline measures."""
    return KdfParams.generate(memory_cost=8192, iterations=1, lanes=1)


def run_local_baseline(url: str, folder: Path, plan: LoadPlan, seconds: float) -> PhaseStats:
    """The same operations on a local library vault at ``url``, single-threaded, no service, no HTTP.

    The same clients' mix, stepped in turn; after each acknowledged write the acting vault signs a
    checkpoint, as the service does at the end of every request that appended.
    """
    checkpoints = f"{folder}{os.sep}baseline{os.sep}"
    with Vault.init(
        url, ADMIN, passphrase(ADMIN), kdf=cheap_kdf(), unlock_delay=timedelta(0), checkpoints=checkpoints
    ) as admin:
        for name, roles in USERS.items():
            access.add_user(admin, name, list(roles), passphrase(name), kdf=cheap_kdf())
        access.set_policy(admin, require_approval=True, approvals=QUORUM)
    vaults = {u: open_vault(url, u, passphrase(u), checkpoints=checkpoints) for u in (ADMIN, *USERS)}
    board = Board()
    board.up({})
    try:
        workers = make_workers(
            plan.clients, board, plan.seed, lambda user: (LocalAPI(vaults[user]), vaults[user].checkpoint)
        )
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            for worker in workers:
                worker.step()
        stats = board.take_stats(time.perf_counter() - start)
    finally:
        for vault in vaults.values():
            vault.close()
    if board.problems:
        raise RuntimeError(f"the local baseline went wrong: {board.problems[:3]}")
    return stats


@contextmanager
def fresh_database(spec: str, folder: Path, name: str) -> Iterator[str]:
    """``sqlite``: a file in ``folder``; a PostgreSQL URL: a fresh schema there, dropped afterwards."""
    if spec == "sqlite":
        yield f"sqlite:///{folder / f'{name}.sqlite3'}"
        return
    if not spec.startswith("postgresql"):
        raise ValueError(f"--database is 'sqlite' or a postgresql+psycopg:// URL, not {spec!r}")
    schema = f"{name}_{os.getpid()}_{random.randrange(1 << 30)}"
    admin = create_engine(spec, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        separator = "&" if "?" in spec else "?"
        yield f"{spec}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by nearest rank; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(q * len(ordered)))) - 1]
