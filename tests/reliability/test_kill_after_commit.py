"""Regression: a batch killed after its audit entry committed but before its outputs were in place.

Before the fix the rerun anonymized that batch again under a second entry, and the first entry covered
outputs nobody ever saw. Now the batch's commit record, written inside its transaction, lets the rerun
publish the committed outputs first (`ifadit.pipeline.resume.recover_committed`); a record whose
transaction never committed is ignored. Each case kills the job at a fixed point (see `kill_jobs`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ifadit.media.image import write_image
from ifadit.media.manifest import read_manifest
from ifadit.pipeline.batch import anonymize_paths
from ifadit.pipeline.resume import JOURNAL_NAME, PENDING_NAME
from ifadit.pipeline.staging import STAGING_PREFIX
from tests.pipeline.support import CASE, audit_entries, make_lab
from tests.reliability.kill_jobs import OPTIONS, JobServer

PHOTOS = 4


@pytest.mark.parametrize(
    ("stall", "checkpoint", "committed_files"),
    [("journal", 3, 3), ("publish", 3, 3), ("publish", None, 4), ("append", 3, 0)],
)
def test_rerun_publishes_what_the_killed_batch_committed(
    server: JobServer,
    tmp_path: Path,
    astronaut: np.ndarray,
    stall: str,
    checkpoint: int | None,
    committed_files: int,
) -> None:
    lab = make_lab(tmp_path)
    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    for index in range(PHOTOS):
        write_image(photos / f"p{index}.png", np.roll(astronaut[0:224, 112:336], 3 * index, axis=1))
    ended = server.run("stalled-batch", [lab.url, str(photos), str(out), checkpoint, stall], 0.0)
    assert ended.killed

    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == []  # nothing visible yet
    assert [e.details["files"] for e in audit_entries(lab, "anonymize")] == (
        [committed_files] if committed_files else []
    )
    [record] = out.glob(f"{STAGING_PREFIX}*/{PENDING_NAME}")  # the commit record, committed or not

    with lab.open("olga") as vault:
        report = anonymize_paths(vault, [photos], out, OPTIONS, case=CASE, checkpoint=checkpoint)
    assert not report.failed
    entries = audit_entries(lab, "anonymize")
    assert sum(e.details["files"] for e in entries) == PHOTOS  # every output audited exactly once
    assert sum(item.resumed for item in report.items) == committed_files
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        *(f"p{i}.png" for i in range(PHOTOS)),
        "run.json",  # the index the finished rerun wrote
    ]
    seqs = [read_manifest(out / f"p{i}.png").audit_seq for i in range(PHOTOS)]  # type: ignore[union-attr]
    if committed_files:
        assert seqs[:committed_files] == [entries[0].seq] * committed_files  # the killed job's entry
        assert not record.parent.exists() and (out / JOURNAL_NAME).exists()
    else:
        assert record.exists()  # an uncommitted record is left alone: its run might still be going
