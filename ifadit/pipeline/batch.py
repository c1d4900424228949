"""The serial engine: one audited anonymize run over files, folders (recursive) and videos.

A run:
  1. plans the items and checks the options (nothing touches the vault yet);
  2. authorizes the operator and unseals the key in a short read-only vault action (a refusal, e.g. a
     missing role or a revoked key, is audited);
  3. runs the per-item function `anonymize_item` over every item into a staging folder, holding no
     database lock, so other vault users are not blocked by a long batch; a bad input (IfaditError) is
     reported and skipped, any other exception is audited as a failed run and leaves no output;
  4. in ONE transaction: unseals the key again (the audited key use, refused if the key was suspended,
     revoked or rotated meanwhile), reserves the run's audit sequence number, signs and embeds every
     manifest (`finish_item`) and appends the run's single audit entry (the keyed digest of the inputs, so a
     bundle reader cannot confirm a guessed original, the digest of the outputs, counts); a batch that
     produced no output at all is audited as failed (`NothingAnonymized`), never as a run;
  5. only after that commit, records the outputs in the resume journal, publishes them (renames them
     into place) and appends the run to the output folder's run index (`ifadit.pipeline.run_index`).
Outputs already on disk are refused before step 3 unless `force` (those a resumed job verifies excepted).
A kill at any point leaves no output under its name without its entry; at most the hidden staging folder.
A kill between the commit of step 4 and the end of step 5 leaves the batch's commit record in that folder
(written inside the transaction): the next run into the same output folder publishes those outputs first
(`ifadit.pipeline.resume.recover_committed`), so none is anonymized and audited twice.
An engine with workers (`ifadit.pipeline.ray_engine.RayEngine`) keeps steps 1, 2, 4 and 5 on the driver and
runs step 3 on the workers; `SerialEngine` runs it in this process.

Resuming (`ifadit.pipeline.resume`): before step 3, items whose published output verifies for this run
(same input, same key handle/version and backend, signed manifest intact) are skipped. With `checkpoint=N`
the job is resumable: steps 3-5 repeat per N items, each batch its own audit entry recorded in the journal,
so a job killed halfway keeps the batches it committed. By default the whole job is one batch and one audit
entry and writes no journal (a kill then leaves nothing to resume: the rerun does everything, once).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

from ifadit.backends.base import Backend, get_backend
from ifadit.errors import IfaditError, InputError
from ifadit.faces.detect import Detector
from ifadit.media.digests import list_digest
from ifadit.pipeline.anonymize import (
    MANIFEST_PURPOSE,
    AnonymizeOptions,
    ItemResult,
    ManifestStamp,
    RunContext,
    finish_item,
    mask_scale_for,
)
from ifadit.pipeline.anonymize_item import anonymize_item
from ifadit.pipeline.inputs import Item, plan_items, refuse_existing
from ifadit.pipeline.outputs import keyed_list_digest
from ifadit.pipeline.progress import FrameBar
from ifadit.pipeline.resume import Journal, clear_pending, recover_committed, write_pending
from ifadit.pipeline.run_index import RUN_INDEX_NAME, RunRecord, append_run, read_runs
from ifadit.pipeline.staging import Staging
from keyvault import KeyStateError, PermissionDenied, UnsealedKey, Vault, key_fingerprint, keys, ledger

OnItem = Callable[[ItemResult], None] | None  # called with each item's result as it comes in


class NothingAnonymized(IfaditError):
    """A batch produced no output (every file failed, or there was none): audited as a failed run."""


@dataclass(frozen=True)
class RunReport:
    """The outcome of one run."""

    items: tuple[ItemResult, ...]
    backend: str
    key_handle: str | None
    key_version: int | None
    audit_seq: int | None  # the last audit entry covering these outputs; None when nothing was produced
    sealed: bool
    audit_seqs: tuple[int, ...] = ()  # the entries this invocation appended (none when all were resumed)

    @property
    def failed(self) -> tuple[ItemResult, ...]:
        """The items that could not be anonymized."""
        return tuple(item for item in self.items if item.error)

    @property
    def exit_code(self) -> int:
        """0 when every item succeeded, else the highest item exit code."""
        return max((item.exit_code for item in self.items), default=0)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "backend": self.backend,
            "key_handle": self.key_handle,
            "key_version": self.key_version,
            "audit_seq": self.audit_seq,
            "sealed_originals": self.sealed,
            "files": len(self.items),
            "failed": len(self.failed),
            "resumed": sum(item.resumed for item in self.items),
            "audit_seqs": list(self.audit_seqs),
            "faces": sum(item.faces for item in self.items),
            "items": [item.as_dict() for item in self.items],
        }


def default_backend() -> str:
    """The CLI's default: the reversible "ifadit" backend. Without its model, building it raises `ModelError`
    naming the fix; a one-way backend is never chosen silently."""
    return "ifadit"


def choose_key(vault: Vault, *, key: str | None, case: str | None) -> str | None:
    """The key handle a run uses: `key`, else the newest active key of `case`, else None."""
    if key is not None or case is None:
        return key
    active = keys.list_keys(vault, case=case, state="active")
    if not active:
        raise KeyStateError(
            f"case {case} has no active key", hint="an admin issues one with `ifadit keys issue`"
        )
    return active[0].handle


def run_serial(
    items: Sequence[Item],
    ctx: RunContext,
    staging: Staging,
    *,
    progress: bool = False,
    on_item: OnItem = None,
) -> list[ItemResult]:
    """Step 3: `anonymize_item` over `items` in order; a bad input (IfaditError) is recorded and skipped."""
    results = []
    for item in tqdm(items, disable=not progress, file=sys.stderr, unit="file", desc="anonymize"):
        staged = staging.path_for(item.target)
        try:
            with FrameBar(item.source.name, enabled=progress and item.kind == "video") as on_frame:
                result = anonymize_item(item, ctx, staged, on_frame)
        except IfaditError as exc:
            staging.drop(staged)
            result = ItemResult(item.source, item.target, item.kind, error=str(exc), exit_code=exc.exit_code)
        results.append(result)
        if on_item is not None:
            on_item(result)
    return results


class Engine(Protocol):
    """Runs step 3 (`anonymize_item` over items into the staging folder) somewhere; results in item order."""

    @property
    def name(self) -> str: ...

    def run(
        self, items: Sequence[Item], ctx: RunContext, staging: Staging, *, progress: bool, on_item: OnItem
    ) -> list[ItemResult]:
        """`items` anonymized into `staging`, results in item order; a bar on stderr with `progress`,
        `on_item(result)` as each item's result comes in."""
        ...


@dataclass(frozen=True)
class SerialEngine:
    """Step 3 in this process, one item after the other (`run_serial`)."""

    name: str = "serial"
    run = staticmethod(run_serial)


ENGINES = ("serial", "ray")


def engine_for(
    name: str, *, address: str | None = None, workers: int = 2, gpus_per_worker: float = 0.0
) -> Engine:
    """The engine called `name` ("serial" or "ray"); Ray is imported only when a Ray run starts."""
    if name == "serial":
        if address is not None or gpus_per_worker:
            raise ValueError("--address and --gpus-per-worker apply to --engine ray only")
        return SerialEngine()
    if name == "ray":
        from ifadit.pipeline.ray_engine import RayEngine

        return RayEngine(address=address, workers=workers, gpus_per_worker=gpus_per_worker)
    raise ValueError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")


class _Run:
    """The vault side of one run: the audit fields, the key checks and the final transaction."""

    def __init__(self, vault: Vault, handle: str | None, case: str | None, details: dict[str, Any]) -> None:
        self.vault, self.handle, self.case, self.details = vault, handle, case, details

    def _action(self, record: bool = True) -> Any:
        return self.vault.action(
            "anonymize",
            role="operator",
            key=self.handle,
            case=self.case,
            details=dict(self.details),
            record=record,
        )

    def unseal(self, act: Any) -> UnsealedKey | None:
        if self.handle is None:
            return None
        unsealed = keys.unseal_for_use(self.vault, self.handle, purpose="anonymize", action=act)
        if self.case is not None and unsealed.case_id != self.case:
            raise PermissionDenied(f"key {self.handle} does not belong to case {self.case}")
        return unsealed

    def authorize(self) -> UnsealedKey | None:
        """Step 2: role and key checks in a read-only action (audited when refused)."""
        with self._action(record=False) as act:
            return self.unseal(act)

    def fail(self, exc: Exception) -> None:
        """Audit a run that broke off with `exc` (outcome failed, the error's type)."""
        try:
            with self._action():
                raise exc
        except Exception as raised:
            if raised is not exc:
                raise

    def committed(self, seq: int, outputs_digest: str) -> bool:
        """Whether audit entry `seq` is a committed anonymize entry over outputs with that list digest."""
        with self._action(record=False) as act:
            entry = ledger.entry_at(act.session, seq)
        return (
            entry is not None
            and (entry.action, entry.outcome) == ("anonymize", "ok")
            and entry.digests.get("outputs") == outputs_digest
        )

    def commit(
        self,
        key: UnsealedKey | None,
        results: list[ItemResult],
        before_commit: Callable[[int, list[ItemResult], str], None],
    ) -> tuple[int, list[ItemResult]]:
        """Step 4: the audited key use, the manifests and the run's entry, in one transaction.

        `before_commit(seq, results, outputs_digest)` runs inside the transaction, after the manifests.
        """
        with self._action() as act:
            final = self.unseal(act)
            if key is not None and final is not None and final.version != key.version:
                raise KeyStateError(
                    f"key {self.handle} was rotated to version {final.version} during the run: nothing published",
                    hint="run again",
                )
            seq = ledger.next_seq(act.session)
            signer = lambda data: self.vault.sign_detached(MANIFEST_PURPOSE, data)  # noqa: E731
            results = [finish_item(r, seq, signer) if r.error is None else r for r in results]
            done = [r for r in results if r.error is None]
            act.details.update(
                files=len(done), failed=len(results) - len(done), faces=sum(r.faces for r in done)
            )
            if not done:
                raise NothingAnonymized(f"0 of {len(results)} files anonymized: nothing written")
            act.digests = {
                "inputs": keyed_list_digest(self.vault, (r.input_sha256 or "" for r in done)),
                "outputs": list_digest(r.output_sha256 or "" for r in done),
            }
            before_commit(seq, results, act.digests["outputs"])
        return seq, results


def anonymize_paths(
    vault: Vault,
    inputs: Sequence[Path],
    output: Path,
    options: AnonymizeOptions,
    *,
    key: str | None = None,
    case: str | None = None,
    progress: bool = False,
    on_item: Callable[[ItemResult], None] | None = None,
    engine: Engine | None = None,
    checkpoint: int | None = None,
    force: bool = False,
) -> RunReport:
    """Anonymize files, folders (recursive) and videos into `output` as one audited run (operator role).

    `engine` runs step 3 (default `SerialEngine()`); `checkpoint=N` commits, journals and publishes every N
    items. Outputs journalled by an earlier run and verified are skipped (see `ifadit.pipeline.resume`);
    any other output already on disk is refused (`InputError`, nothing written) unless `force`.
    """
    # 1. Plan the items and build the backend and detector; choose the key.
    items, backend, detector = _plan(inputs, output, options, checkpoint)
    handle = choose_key(vault, key=key, case=case)
    if handle is None and (backend.reversible or options.seal_original):
        needs = "--seal-original" if options.seal_original else f"backend {backend.name!r}"
        raise ValueError(f"{needs} needs a key: pass --key HANDLE or --case CASE")
    details = {"backend": backend.name, "seal_original": options.seal_original, "lossless": options.lossless}
    run = _Run(vault, handle, case, details)
    # 2. Authorize the operator and unseal the key (read-only).
    unsealed = run.authorize()
    stamp = _stamp(vault, backend, options, unsealed)
    ctx = RunContext(options=options, backend=backend, detector=detector, stamp=stamp, key=unsealed)
    single = items[0].target if len(items) == 1 and items[0].target == Path(output) else None
    root = single.parent if single is not None else Path(output)
    index = None if single is not None else root / RUN_INDEX_NAME
    if index is not None:
        read_runs(index)  # a foreign file under the index's name is refused before anything is written
    # Resume: publish what a killed run committed, skip the outputs an earlier run published.
    journal = Journal.load(vault, root)
    recover_committed(journal, run.committed)  # outputs a killed run committed but never published
    done, todo = _skip_published(journal, vault, items, stamp, on_item)
    if not force:
        refuse_existing(todo)
    # 3-5. Per batch: anonymize into staging, commit, journal, publish.
    runner, step = engine or SerialEngine(), checkpoint or max(len(todo), 1)
    seqs = []
    with Staging(root) as staging:
        for start in range(0, len(todo), step):
            batch = todo[start : start + step]
            seq, results = _run_batch(
                run, runner, batch, ctx, staging, journal, checkpoint, progress, on_item
            )
            seqs += [seq] if seq is not None else []
            done.update((result.target, result) for result in results)
    report = _report(items, done, journal, stamp, options, seqs)
    if index is not None and any(item.error is None for item in report.items):
        record = RunRecord(
            stamp.backend,
            stamp.model_id,
            stamp.key_handle,
            stamp.key_version,
            options,
            report.audit_seqs,
            report.items,
        )
        append_run(index, record)
    return report


def _report(
    items: list[Item],
    done: dict[Path, ItemResult],
    journal: Journal,
    stamp: ManifestStamp,
    options: AnonymizeOptions,
    seqs: list[int],
) -> RunReport:
    """The run's report; its audit entry is the last one appended, else the newest of the resumed outputs'."""
    previous = [
        journal.entries[journal.name(item.target)]["audit_seq"] for item in items if done[item.target].resumed
    ]
    return RunReport(
        items=tuple(done[item.target] for item in items),
        backend=stamp.backend,
        key_handle=stamp.key_handle,
        key_version=stamp.key_version,
        audit_seq=seqs[-1] if seqs else max(previous, default=None),
        sealed=options.seal_original,
        audit_seqs=tuple(seqs),
    )


def _plan(
    inputs: Sequence[Path], output: Path, options: AnonymizeOptions, checkpoint: int | None
) -> tuple[list[Item], Backend, Detector]:
    """Step 1: checked options, the items to write, and the run's backend and detector."""
    options.check()
    if checkpoint is not None and checkpoint < 1:
        raise ValueError(f"checkpoint must be >= 1 item, got {checkpoint}")
    items = plan_items(list(inputs), Path(output), lossless_video=options.lossless)
    if not items:
        raise InputError(f"no image or video files in {', '.join(map(str, inputs))}: nothing to anonymize")
    backend = get_backend(options.backend, **dict(options.backend_options))
    detector = options.build_detector()
    return items, backend, detector


def _stamp(
    vault: Vault, backend: Backend, options: AnonymizeOptions, unsealed: UnsealedKey | None
) -> ManifestStamp:
    """What every manifest of the run says about how it was made."""
    return ManifestStamp(
        backend=backend.name,
        vault_id=vault.id,
        signing_key_id=key_fingerprint(vault.public_key),
        key_handle=unsealed.handle if unsealed else None,
        key_version=unsealed.version if unsealed else None,
        model_id=getattr(backend, "model_id", None),
        model_sha256=getattr(backend, "model_sha256", None),
        mask_scale=mask_scale_for(backend, options.mask_scale),
    )


def _skip_published(
    journal: Journal, vault: Vault, items: list[Item], stamp: ManifestStamp, on_item: OnItem
) -> tuple[dict[Path, ItemResult], list[Item]]:
    """The results of items an earlier run published and that verify for this one (reported to `on_item`),
    by target, and the items still to do."""
    done: dict[Path, ItemResult] = {}
    todo = []
    for item in items:
        resumed = journal.skippable(vault, item, stamp)
        if resumed is None:
            todo.append(item)
        else:
            done[item.target] = resumed
            if on_item is not None:
                on_item(resumed)
    return done, todo


def _run_batch(
    run: _Run,
    runner: Engine,
    batch: list[Item],
    ctx: RunContext,
    staging: Staging,
    journal: Journal,
    checkpoint: int | None,
    progress: bool,
    on_item: OnItem,
) -> tuple[int | None, list[ItemResult]]:
    """Steps 3-5 for one batch; its audit sequence number (None: nothing produced, audited as failed) and results."""
    try:
        results = runner.run(batch, ctx, staging, progress=progress, on_item=on_item)  # 3
    except Exception as exc:
        run.fail(exc)
        raise
    assert staging.folder is not None
    try:
        seq, results = run.commit(ctx.key, results, partial(write_pending, staging.folder, journal))  # 4
    except NothingAnonymized:
        return None, results
    if checkpoint is not None:  # 5
        journal.record(results, seq)
        journal.save()
    staging.publish()
    clear_pending(staging.folder)
    return seq, results
