"""Resumable jobs (serial engine; the Ray engine shares the code): a SIGKILLed job restarted, tampered outputs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ifadit.errors import InputError
from ifadit.media.image import read_image, write_image
from ifadit.pipeline.anonymize import AnonymizeOptions
from ifadit.pipeline.batch import RunReport, anonymize_paths
from ifadit.pipeline.run_index import RUN_INDEX_NAME
from tests.pipeline.support import CASE, Lab, audit_entries, make_lab

PHOTOS = [
    "person01/img28.jpg",
    "person01/img42.jpg",
    "person02/img47.jpg",
    "person02/img8.jpg",
    "person03/img53.jpg",
    "person03/img3.jpg",
]

# Runs the job in batches of 2 and, once the 3rd item (in the 2nd batch) is staged, says so and hangs.
KILLED_JOB = """
import sys, time
from pathlib import Path
from ifadit.pipeline.anonymize import AnonymizeOptions
from ifadit.pipeline.batch import anonymize_paths
from keyvault.vault import open_vault

url, photos, out, marker = sys.argv[1:]
done = []
def on_item(result):
    done.append(result)
    if len(done) == 3:
        Path(marker).write_text("halfway")
        time.sleep(300)
with open_vault(url, "olga", b"olga") as vault:
    anonymize_paths(vault, [Path(photos)], Path(out), AnonymizeOptions(backend="blur"), case="C-17",
                    checkpoint=2, on_item=on_item)
"""


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return make_lab(tmp_path)


@pytest.fixture
def photos(tmp_path: Path, shared_dir: Path) -> Path:
    """Six deepface photos (three people, JPEG as shipped), flat, in plan order p0..p5."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for index, name in enumerate(PHOTOS):
        (folder / f"p{index}.jpg").write_bytes(
            (shared_dir / "data" / "reid" / "deepface" / name).read_bytes()
        )
    return folder


def _run(
    lab: Lab,
    photos: Path,
    out: Path,
    checkpoint: int | None = 2,
    mask_scale: float | None = None,
    force: bool = False,
) -> RunReport:
    options = AnonymizeOptions(backend="blur", mask_scale=mask_scale)
    with lab.open("olga") as vault:
        return anonymize_paths(vault, [photos], out, options, case=CASE, checkpoint=checkpoint, force=force)


def _published(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if not p.name.startswith(".") and p.name != RUN_INDEX_NAME)


def test_killed_job_resumes_without_redoing_or_reauditing(lab: Lab, photos: Path, tmp_path: Path) -> None:
    out, marker = tmp_path / "out", tmp_path / "halfway"
    job = subprocess.Popen([sys.executable, "-c", KILLED_JOB, lab.url, str(photos), str(out), str(marker)])
    deadline = time.monotonic() + 240
    while not marker.exists():
        assert job.poll() is None, "the job ended before it was killed"
        assert time.monotonic() < deadline, "the job never got halfway"
        time.sleep(0.05)
    os.kill(job.pid, signal.SIGKILL)
    job.wait(timeout=30)

    assert _published(out) == ["p0.jpg", "p1.jpg"]  # the committed first batch; the second was only staged
    [entry] = audit_entries(lab, "anonymize")
    assert entry.details["files"] == 2
    first_batch = {name: (out / name).stat() for name in ("p0.jpg", "p1.jpg")}

    report = _run(lab, photos, out)
    assert [item.target.name for item in report.items if item.resumed] == ["p0.jpg", "p1.jpg"]
    assert len(report.audit_seqs) == 2 and not report.failed
    assert _published(out) == [f"p{index}.jpg" for index in range(6)]
    entries = audit_entries(lab, "anonymize")
    assert [e.details["files"] for e in entries] == [2, 2, 2]  # six outputs, each audited exactly once
    for name, stat in first_batch.items():  # not rewritten
        assert ((out / name).stat().st_ino, (out / name).stat().st_mtime_ns) == (
            stat.st_ino,
            stat.st_mtime_ns,
        )

    fresh = _run(lab, photos, tmp_path / "fresh", checkpoint=None)  # one uninterrupted job
    assert fresh.audit_seqs == (fresh.audit_seq,)
    for index in range(6):
        assert np.array_equal(
            read_image(out / f"p{index}.jpg"), read_image(tmp_path / "fresh" / f"p{index}.jpg")
        )

    again = _run(lab, photos, out)  # nothing left to do: no entry at all
    assert all(item.resumed for item in again.items) and again.audit_seqs == ()
    assert again.audit_seq == max(report.audit_seqs)
    assert len(audit_entries(lab, "anonymize")) == 4  # 3 for `out`, 1 for `fresh`


def test_only_verified_outputs_are_skipped(lab: Lab, photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _run(lab, photos, out)
    write_image(out / "p1.jpg", np.zeros((64, 64, 3), np.uint8))  # a replaced output: its manifest is gone
    (photos / "p2.jpg").write_bytes((photos / "p5.jpg").read_bytes())  # a changed input
    (out / "p3.jpg").write_bytes((out / "p3.jpg").read_bytes() + b"\0")  # an output whose bytes changed
    with pytest.raises(InputError, match="p1.jpg: output already exists \\(and 2 more\\)"):
        _run(lab, photos, out)  # verified outputs are skipped; the others are overwritten only when forced
    report = _run(lab, photos, out, force=True)
    redone = sorted(item.target.name for item in report.items if not item.resumed)
    assert redone == ["p1.jpg", "p2.jpg", "p3.jpg"]
    assert audit_entries(lab, "anonymize")[-1].details["files"] == 1  # batches of 2 over 3 items: 2 + 1
    assert np.array_equal(
        read_image(out / "p2.jpg"), read_image(out / "p5.jpg")
    )  # p2 now anonymizes p5's photo


def test_a_resumed_run_with_another_mask_scale_redoes_everything(
    lab: Lab, photos: Path, tmp_path: Path
) -> None:
    """The journal's outputs were pasted with another face ellipse (their manifests say so): none is kept."""
    out = tmp_path / "out"
    _run(lab, photos, out)
    report = _run(lab, photos, out, mask_scale=1.4, force=True)
    assert not any(item.resumed for item in report.items) and len(report.items) == 6
    assert {item.manifest.mask_scale for item in report.items if item.manifest} == {1.4}


def test_no_checkpoint_means_no_journal(lab: Lab, photos: Path, tmp_path: Path) -> None:
    report = _run(lab, photos, tmp_path / "out", checkpoint=None)
    assert len(report.audit_seqs) == 1 and not any(item.resumed for item in report.items)
    assert _published(tmp_path / "out") == [f"p{index}.jpg" for index in range(6)]
    with pytest.raises(ValueError, match="checkpoint"):
        _run(lab, photos, tmp_path / "out", checkpoint=0)
