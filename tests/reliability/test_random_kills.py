"""Threat 4 at random points: kill -9 a batch anonymize, or a loop of audited key actions, after a seeded
random delay drawn from the measured duration of the same job unkilled (the faster of two runs), again and
again on one vault.

After every kill: the vault opens, its audit log verifies strictly (export + offline `verify_bundle`) and its
sequence numbers have no gap; every visible output is complete (its pixels are the unkilled run's) and
carries a signed manifest whose audit entry exists; no key or key version lacks its entry. Then the job is
finished (a resumed batch, one more round of key actions) and checked again: the batch's outputs equal the
unkilled run's and each is audited exactly once (the entries of the finished job name exactly the published
outputs, by the digest of their list).

Each kill's seed (it fixes the checkpoint size and the delay; where that delay lands in the job also depends
on the machine's speed) is in every assertion message; rerun one with `IFADIT_KILL_SEEDS=<seed>`. A job that
had published everything before the kill and keeps no journal (no checkpoint) is not rerun: by design its
rerun would be a new job. Jobs run as forks of one server process (`kill_jobs`), so a kill costs no start-up.
The default run
kills 8 times per job (4 times for the PostgreSQL append loop); `-m slow` kills 40 more times each.
"""

from __future__ import annotations

import os
import random
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from ifadit.media.digests import file_sha256, list_digest
from ifadit.media.image import read_image, write_image
from ifadit.media.manifest import read_manifest, verify_manifest
from ifadit.pipeline.anonymize import MANIFEST_PURPOSE, AnonymizeOptions
from ifadit.pipeline.batch import anonymize_paths
from ifadit.pipeline.run_index import RUN_INDEX_NAME
from keyvault import keys
from keyvault.audit import AuditEntry
from keyvault.vault import Vault, open_vault, verify_detached
from keyvault.verify import verify_bundle
from tests.keyvault.support import ADMIN, ADMIN_PASS, table_rows, vault, vault_url  # noqa: F401
from tests.pipeline.support import CASE, Lab, make_lab
from tests.reliability.kill_jobs import JobServer

DEFAULT_SEEDS = range(1000, 1008)
POSTGRES_DEFAULT_SEEDS = range(1000, 1004)  # half as many on PostgreSQL by default: its appends cost more
SLOW_SEEDS = range(2000, 2040)
PHOTOS = 6  # 224 px crops of the astronaut, one face each: ~0.1 s per item on one core
ROUNDS = 15  # rounds of the append job: four audit appends each


def _seeds(default: range) -> list[int]:
    chosen = os.environ.get("IFADIT_KILL_SEEDS")
    return [int(seed) for seed in chosen.split(",")] if chosen else list(default)


def check_log(opened: Vault, bundle: Path, why: str) -> list[AuditEntry]:
    """The log exports and verifies strictly, with sequence numbers 1..n; returns its entries."""
    count = opened.export_audit(bundle)
    report = verify_bundle(bundle, opened.public_key, strict=True)
    assert report.entries == count, why
    entries = [
        AuditEntry.from_canonical(bytes(row["canonical"]))
        for row in sorted(table_rows(opened.url, "audit_entries"), key=lambda r: r["seq"])
    ]
    assert [entry.seq for entry in entries] == list(range(1, len(entries) + 1)), f"{why}: gap in the chain"
    return entries


# ---------------------------------------------------------------- batch anonymize


@pytest.fixture(scope="module")
def batch(
    tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray, server: JobServer
) -> tuple[Lab, Path, dict[str, np.ndarray], float]:
    """The lab vault, the photos, the unkilled job's outputs (pixels by name) and its duration (faster of 2 runs)."""
    tmp = tmp_path_factory.mktemp("kills")
    lab = make_lab(tmp)
    photos = tmp / "photos"
    photos.mkdir()
    crop = astronaut[0:224, 112:336]
    for index in range(PHOTOS):
        write_image(photos / f"p{index}.png", np.roll(crop, 3 * index, axis=1))
    seconds = [
        server.run("batch", [lab.url, str(photos), str(tmp / f"reference{run}"), 1], None).seconds
        for run in range(2)
    ]
    reference = {p.name: read_image(p) for p in sorted((tmp / "reference0").glob("p*.png"))}
    assert len(reference) == PHOTOS
    assert all(
        np.array_equal(read_image(tmp / "reference1" / name), image) for name, image in reference.items()
    )
    return lab, photos, reference, min(seconds)


def check_outputs(
    opened: Vault, out: Path, reference: dict[str, np.ndarray], entries: list[AuditEntry], why: str
) -> dict[int, list[Path]]:
    """Every visible file is a complete, signed output audited by an existing entry; grouped by entry."""
    by_seq = {entry.seq: entry for entry in entries}
    groups: dict[int, list[Path]] = defaultdict(list)
    visible = [
        p
        for p in out.rglob("*")
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(out).parts)
        and p.name != RUN_INDEX_NAME  # the run index, written (atomically) after a run publishes
    ]
    for path in visible:
        assert path.name in reference, f"{why}: unexpected file {path.name}"
        assert np.array_equal(read_image(path), reference[path.name]), (
            f"{why}: {path.name} is not the full output"
        )
        manifest = read_manifest(path)
        assert manifest is not None, f"{why}: {path.name} has no manifest"
        verify_manifest(
            manifest, lambda sig, data: verify_detached(opened.public_key, MANIFEST_PURPOSE, data, sig)
        )
        entry = by_seq.get(manifest.audit_seq or 0)
        assert entry is not None and (entry.action, entry.outcome) == ("anonymize", "ok"), (
            f"{why}: {path.name} names audit entry {manifest.audit_seq}, which is not an ok anonymize entry"
        )
        groups[entry.seq].append(path)
    return groups


def kill_batch_once(
    server: JobServer,
    lab: Lab,
    photos: Path,
    reference: dict[str, np.ndarray],
    duration: float,
    seed: int,
    tmp: Path,
) -> bool:
    rng = random.Random(seed)
    checkpoint = rng.choice([1, 3, None])
    delay = rng.uniform(0.0, duration)
    why = f"seed={seed} (checkpoint {checkpoint}, kill after {delay:.3f} s of {duration:.3f} s)"
    out = tmp / f"out-{seed}"
    before = len(table_rows(lab.url, "audit_entries"))
    ended = server.run("batch", [lab.url, str(photos), str(out), checkpoint], delay)

    with lab.open("audrey") as auditor:  # what the kill left
        entries = check_log(auditor, tmp / "killed.jsonl", why)
        left = check_outputs(auditor, out, reference, entries, why) if out.exists() else {}
    complete = sum(len(group) for group in left.values()) == PHOTOS  # the kill came after the last publish

    if not (
        complete and checkpoint is None
    ):  # finish the job (a finished job without a journal is not resumed:
        with lab.open("olga") as operator:  # its rerun would be a new job, by design)
            report = anonymize_paths(
                operator, [photos], out, AnonymizeOptions(backend="blur"), case=CASE, checkpoint=checkpoint
            )
        assert not report.failed, why
    with lab.open("audrey") as auditor:
        entries = check_log(auditor, tmp / "finished.jsonl", why)
        groups = check_outputs(auditor, out, reference, entries, why)
    assert sorted(p.name for group in groups.values() for p in group) == sorted(reference), why
    job_entries = [e for e in entries[before:] if e.action == "anonymize" and e.outcome == "ok"]
    assert sum(e.details["files"] for e in job_entries) == PHOTOS, f"{why}: an output was audited twice"
    for entry in job_entries:  # each entry of the job covers exactly the outputs that name it
        names = sorted(groups.get(entry.seq, []))
        assert entry.details["files"] == len(names), f"{why}: entry {entry.seq} covers unpublished outputs"
        assert entry.digests["outputs"] == list_digest(file_sha256(p) for p in names), why
    return ended.killed and not complete


def _kill_batches(
    server: JobServer, batch: tuple[Lab, Path, dict[str, np.ndarray], float], seeds: list[int], tmp: Path
) -> None:
    lab, photos, reference, duration = batch
    killed = sum(kill_batch_once(server, lab, photos, reference, duration, seed, tmp) for seed in seeds)
    print(
        f"batch anonymize: {killed} of {len(seeds)} jobs killed mid-run (job takes {duration:.2f} s)"
    )  # -s shows it
    assert killed >= len(seeds) // 2, f"only {killed} of {len(seeds)} jobs were killed before they ended"


def test_batch_killed_at_random_points(
    server: JobServer, batch: tuple[Lab, Path, dict[str, np.ndarray], float], tmp_path: Path
) -> None:
    _kill_batches(server, batch, _seeds(DEFAULT_SEEDS), tmp_path)


@pytest.mark.slow
def test_batch_killed_at_many_random_points(
    server: JobServer, batch: tuple[Lab, Path, dict[str, np.ndarray], float], tmp_path: Path
) -> None:
    _kill_batches(server, batch, list(SLOW_SEEDS), tmp_path)


# ---------------------------------------------------------------- audit appends


def check_keys(opened: Vault, entries: list[AuditEntry], why: str) -> None:
    """Every key, version and state matches the ok entries: nothing changed without its entry, nor the reverse."""
    ok = [e for e in entries if e.outcome == "ok" and e.action.startswith("key.")]
    issued = {e.key_handle for e in ok if e.action == "key.issue"}
    found = {info.handle: info for info in keys.list_keys(opened)}
    assert set(found) == issued, f"{why}: keys and key.issue entries differ"
    for handle, info in found.items():
        mine = [e for e in ok if e.key_handle == handle]
        rotations = sum(e.action == "key.rotate" for e in mine)
        assert [v.version for v in info.versions] == list(range(1, rotations + 2)), (
            f"{why}: {handle} versions"
        )
        last = [e.action for e in mine if e.action in ("key.issue", "key.suspend", "key.resume")][-1]
        assert info.state == ("suspended" if last == "key.suspend" else "active"), f"{why}: {handle} state"
    versions = table_rows(opened.url, "key_versions")
    assert all(row["material_sealed"] for row in versions), (
        f"{why}: a key version without its sealed material"
    )


def _kill_appends(server: JobServer, opened: Vault, seeds: list[int], tmp: Path) -> None:
    args = [opened.url, ADMIN, ADMIN_PASS.decode(), ROUNDS]
    duration = min(server.run("append", args, None).seconds for _ in range(2))
    killed = 0
    for seed in seeds:
        delay = random.Random(seed).uniform(0.0, duration)
        why = f"seed={seed} (kill after {delay:.3f} s of {duration:.3f} s)"
        killed += server.run("append", args, delay).killed
        with open_vault(opened.url, ADMIN, ADMIN_PASS) as again:
            check_keys(again, check_log(again, tmp / "killed.jsonl", why), why)
            handle = keys.issue(again, "C-kill", "after the kill").handle  # the vault takes writes again
            keys.rotate(again, handle)
            check_keys(again, check_log(again, tmp / "after.jsonl", why), why)
    print(
        f"audit appends ({opened.url.partition(':')[0]}): {killed} of {len(seeds)} jobs killed mid-run "
        f"(job takes {duration:.2f} s)"
    )  # -s shows it
    assert killed >= len(seeds) // 2, f"only {killed} of {len(seeds)} jobs were killed before they ended"
    with open_vault(opened.url, ADMIN, ADMIN_PASS) as again:
        actions = [e.action for e in check_log(again, tmp / "end.jsonl", "end")]
    assert actions.count("key.issue") > len(seeds)


def test_audit_appends_killed_at_random_points(server: JobServer, vault: Vault, tmp_path: Path) -> None:  # noqa: F811
    postgres = vault.url.startswith("postgresql")
    _kill_appends(server, vault, _seeds(POSTGRES_DEFAULT_SEEDS if postgres else DEFAULT_SEEDS), tmp_path)


@pytest.mark.slow
def test_audit_appends_killed_at_many_random_points(
    server: JobServer,
    vault: Vault,  # noqa: F811
    tmp_path: Path,
) -> None:
    _kill_appends(server, vault, list(SLOW_SEEDS), tmp_path)
