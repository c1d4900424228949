"""Fault injection: the Nth database write (or commit) fails, for N = 1, 2, … until the operation completes.

Covered: key issue, rotation, destroy, anonymize (sealed originals) and an approved exact restore, on a SQLite
vault copied from a prepared template for every N. After each injected fault:
- an action and its audit entry are both committed or neither: without a new "ok" entry for the action
  every data table is exactly as before (and no output file exists, not even a temporary); with one, the
  action's effect is there;
- the only new entries are the action's "ok" or the "failed" record of the step the fault hit;
- the vault still opens, exports its audit log, and `verify_bundle` accepts the bundle.
The number of faults injected per operation is asserted (at least one) and collected in FAULTS.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, inspect, text

from ifadit.media.image import write_image
from ifadit.pipeline.anonymize import AnonymizeOptions
from ifadit.pipeline.batch import anonymize_paths
from ifadit.pipeline.restore import restore_path
from ifadit.pipeline.restore_plan import RestoreOptions
from keyvault import access, keys
from keyvault.errors import ApprovalPending
from keyvault.verify import verify_bundle
from tests.pipeline.support import CASE, Lab, audit_entries, make_lab

DATA_TABLES_EXCLUDED = {"audit_entries", "tree_heads", "alembic_version"}
FAULTS: dict[str, int] = {}  # operation/mode -> faults injected (read by the summary test)
MAX_FAULTS = 60  # an operation that still fails after this many injected faults is a bug (never-ending retry)


class InjectedFault(sqlite3.OperationalError):
    """What the database driver raises for an I/O error; SQLAlchemy wraps it like a real one."""


@dataclass
class FaultPlan:
    """Fail the `fail_at`-th matching event ("write": INSERT/UPDATE/DELETE statement, "commit": COMMIT)."""

    mode: str
    fail_at: int
    seen: int = 0
    fired: bool = False

    def _tick(self) -> None:
        self.seen += 1
        if self.seen == self.fail_at:
            self.fired = True
            raise InjectedFault(f"disk I/O error (injected at {self.mode} {self.fail_at})")

    def before_cursor_execute(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if self.mode == "write" and statement.lstrip()[:6].upper() in {"INSERT", "UPDATE", "DELETE"}:
            self._tick()

    def commit(self, conn: Any) -> None:
        if self.mode == "commit":
            self._tick()


@contextmanager
def armed(plan: FaultPlan) -> Iterator[FaultPlan]:
    event.listen(Engine, "before_cursor_execute", plan.before_cursor_execute)
    event.listen(Engine, "commit", plan.commit)
    try:
        yield plan
    finally:
        event.remove(Engine, "before_cursor_execute", plan.before_cursor_execute)
        event.remove(Engine, "commit", plan.commit)


def data_snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every non-audit table, sorted (the vault's state apart from its log)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            tables = sorted(set(inspect(connection).get_table_names()) - DATA_TABLES_EXCLUDED)
            return {
                table: sorted(
                    (tuple(row) for row in connection.execute(text(f"SELECT * FROM {table}"))), key=repr
                )
                for table in tables
            }
    finally:
        engine.dispose()


@dataclass
class Scenario:
    """One operation under test: how to prepare its template vault and how to run it once."""

    action: str  # the audit action the operation records
    prepare: Callable[[Lab, Path], dict[str, Any]]
    run: Callable[[Lab, Path, dict[str, Any]], None]
    outputs: tuple[str, ...] = ()  # files (in the work folder) the operation publishes


def _nothing(lab: Lab, folder: Path) -> dict[str, Any]:
    return {}


def _issue(lab: Lab, folder: Path, state: dict[str, Any]) -> None:
    with lab.open("admin") as vault:
        keys.issue(vault, "C-42", "fault injection")


def _rotate(lab: Lab, folder: Path, state: dict[str, Any]) -> None:
    with lab.open("admin") as vault:
        keys.rotate(vault, lab.key)


def _revoked(lab: Lab, folder: Path) -> dict[str, Any]:
    with lab.open("admin") as vault:
        keys.revoke(vault, lab.key, reason="case closed")
    return {}


def _destroy(lab: Lab, folder: Path, state: dict[str, Any]) -> None:
    with lab.open("admin") as vault:
        keys.destroy(vault, lab.key, reason="retention over", window=timedelta(0))


def _photo(lab: Lab, folder: Path) -> dict[str, Any]:
    from skimage import data

    write_image(folder / "in.png", data.astronaut()[:256, 96:352])
    return {}


def _anonymize(lab: Lab, folder: Path, state: dict[str, Any]) -> None:
    options = AnonymizeOptions(backend="pixelate", seal_original=True)
    with lab.open("olga") as vault:
        report = anonymize_paths(vault, [folder / "in.png"], folder / "out" / "in.png", options, key=lab.key)
    if report.exit_code:
        raise RuntimeError(f"anonymize failed: {report.failed}")


RESTORE = RestoreOptions(case=CASE, reason="warrant 2026/114", exact=True)


def _approved(lab: Lab, folder: Path) -> dict[str, Any]:
    _photo(lab, folder)
    (folder / "out").mkdir()
    _anonymize(lab, folder, {})
    lab.require_approval(True)
    with lab.open("ivan") as vault, pytest.raises(ApprovalPending) as pending:
        restore_path(vault, folder / "out" / "in.png", folder / "restored.png", RESTORE)
    request = pending.value.args[0].split()[1]
    with lab.open("alice") as vault:
        access.approve(vault, request)
    return {}


def _restore(lab: Lab, folder: Path, state: dict[str, Any]) -> None:
    with lab.open("ivan") as vault:
        restore_path(vault, folder / "out" / "in.png", folder / "restored.png", RESTORE)


def _with_out_folder(prepare: Callable[[Lab, Path], dict[str, Any]]) -> Callable[[Lab, Path], dict[str, Any]]:
    def wrapped(lab: Lab, folder: Path) -> dict[str, Any]:
        state = prepare(lab, folder)
        (folder / "out").mkdir()
        return state

    return wrapped


SCENARIOS = {
    "key-issue": Scenario("key.issue", _nothing, _issue),
    "key-rotate": Scenario("key.rotate", _nothing, _rotate),
    "key-destroy": Scenario("key.destroy", _revoked, _destroy),
    "anonymize": Scenario("anonymize", _with_out_folder(_photo), _anonymize, outputs=("out/in.png",)),
    "restore": Scenario(
        "restore", _approved, _restore, outputs=("restored.png", "restored.png.restore.json")
    ),
}


def _copy_lab(template: Path, target: Path, key: str) -> Lab:
    shutil.copytree(template, target)
    return Lab(url=f"sqlite:///{target / 'vault.sqlite3'}", key=key)


def _files(folder: Path) -> set[str]:
    return {
        str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and "vault.sqlite3" not in p.name
    }


def _check_invariants(
    lab: Lab, folder: Path, scenario: Scenario, before: dict[str, Any], n_entries: int, files_before: set[str]
) -> bool:
    """Assert the all-or-nothing invariants after one injected fault; True when the action committed."""
    entries = audit_entries(lab)  # the vault still opens (as the auditor) and lists its log
    new = entries[n_entries:]
    # an "ok" only for the action itself; a step that failed (the action, or a read it made first) as "failed"
    assert all(e.outcome == "failed" or (e.outcome == "ok" and e.action == scenario.action) for e in new), [
        (e.action, e.outcome) for e in new
    ]
    committed = any(e.outcome == "ok" for e in new)
    assert len([e for e in new if e.outcome == "ok"]) <= 1
    new_files = _files(folder) - files_before
    if committed:  # the fault hit after the action's transaction (e.g. the closing tree head)
        assert data_snapshot(lab.url) != before or scenario.action == "anonymize"
        assert all((folder / output).is_file() for output in scenario.outputs), new_files
    else:
        assert data_snapshot(lab.url) == before, "an action without its audit entry left changes behind"
        assert new_files == set(), f"outputs without a committed audit entry: {new_files}"
    assert not [name for name in new_files if name.endswith(".tmp")], new_files
    with lab.open("audrey") as vault:
        count = vault.export_audit(folder / "check.audit.jsonl")
    report = verify_bundle(folder / "check.audit.jsonl", vault.public_key)
    assert report.entries == count == report.signed_size
    (folder / "check.audit.jsonl").unlink()
    return committed


@pytest.mark.parametrize("mode", ["write", "commit"])
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_nth_database_fault_keeps_action_and_audit_entry_together(
    name: str, mode: str, tmp_path: Path
) -> None:
    scenario = SCENARIOS[name]
    template = tmp_path / "template"
    template.mkdir()
    lab = make_lab(template)
    lab.require_approval(False)
    scenario.prepare(lab, template)
    injected = 0
    for fail_at in range(1, MAX_FAULTS + 1):
        work = _copy_lab(template, tmp_path / f"n{fail_at}", lab.key)
        folder = tmp_path / f"n{fail_at}"
        before, n_entries, files_before = data_snapshot(work.url), len(audit_entries(work)), _files(folder)
        with armed(FaultPlan(mode, fail_at)) as plan:
            try:
                scenario.run(work, folder, {})
            except Exception as exc:
                assert plan.fired, f"the operation failed without an injected fault: {exc!r}"
        if not plan.fired:  # N is past the operation's last write: it completed untouched
            assert _check_invariants(work, folder, scenario, before, n_entries, files_before)
            assert all((folder / output).is_file() for output in scenario.outputs)
            break
        injected += 1
        _check_invariants(work, folder, scenario, before, n_entries, files_before)
        shutil.rmtree(folder)
    else:
        pytest.fail(f"{name} still hit a fault after {MAX_FAULTS} injections")
    FAULTS[f"{name}/{mode}"] = injected
    print(f"\n{name}: {injected} {mode} faults injected")
    assert injected >= 1
