"""`ifadit anonymize` through click's runner on real photos and a real vault: outputs, JSON, errors, exits."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ifadit.media.image import read_image, write_image
from ifadit.media.manifest import read_manifest
from ifadit.pipeline.staging import STAGING_PREFIX
from tests.conftest import REPO_ROOT
from tests.pipeline.support import CASE, Lab, audit_entries, make_lab


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    made = make_lab(tmp_path)
    made.require_approval(False)
    return made


@pytest.fixture
def photo(tmp_path: Path, astronaut: np.ndarray) -> Path:
    write_image(tmp_path / "astronaut.png", astronaut)
    return tmp_path / "astronaut.png"


@pytest.mark.parametrize("backend", ["blur", "pixelate", "mask"])
def test_round_trip_through_the_cli(
    lab: Lab, tmp_path: Path, photo: Path, astronaut: np.ndarray, backend: str
) -> None:
    done = lab.cli(
        "anonymize",
        photo,
        "-o",
        tmp_path / "out",
        "--case",
        CASE,
        "--backend",
        backend,
        "--seal-original",
        "--json",
    )
    assert done.exit_code == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["backend"] == backend and summary["files"] == 1 and summary["faces"] == 1
    assert summary["key_handle"] == lab.key and summary["sealed_originals"] is True
    anonymized = tmp_path / "out" / "astronaut.png"
    assert summary["items"][0]["output"] == str(anonymized) and not np.array_equal(
        read_image(anonymized), astronaut
    )

    restored = lab.cli(
        "restore",
        anonymized,
        "-o",
        tmp_path / "restored.png",
        "--case",
        CASE,
        "--reason",
        "court order 7",
        "--exact",
        user="ivan",
    )
    assert restored.exit_code == 0, restored.stderr
    assert "restored 1 face (exact) into" in restored.stdout
    assert np.array_equal(read_image(tmp_path / "restored.png"), astronaut)
    assert json.loads((tmp_path / "restored.png.restore.json").read_text())["mode"] == "exact"


def test_text_output_names_files_key_and_audit_entry(lab: Lab, tmp_path: Path, photo: Path) -> None:
    done = lab.cli("anonymize", photo, "-o", tmp_path / "out.png", "--key", lab.key, "--mask-scale", "1.2")
    assert done.exit_code == 0, done.stderr
    seq = audit_entries(lab, "anonymize")[0].seq
    assert f"{photo} -> {tmp_path / 'out.png'} (1 face)" in done.stdout
    assert f"under key {lab.key} v1; audit entry {seq}" in done.stdout
    manifest = read_manifest(tmp_path / "out.png")
    assert manifest is not None and manifest.audit_seq == seq


def test_bad_files_are_reported_and_the_rest_done(lab: Lab, tmp_path: Path, photo: Path) -> None:
    (tmp_path / "notes.png").write_text("not an image")
    done = lab.cli(
        "anonymize",
        photo,
        tmp_path / "notes.png",
        tmp_path / "missing.jpg",
        "-o",
        tmp_path / "out",
        "--case",
        CASE,
        "--json",
    )
    assert done.exit_code == 1
    assert done.stderr.strip().splitlines() == [  # one line per file as it finishes (stderr is no terminal)
        f"{photo} -> {tmp_path / 'out' / 'astronaut.png'} (1 face)",
        f"Error: {tmp_path / 'notes.png'}: not a recognised image file",
        f"Error: {tmp_path / 'missing.jpg'}: no such file",
    ]
    items = json.loads(done.stdout)["items"]
    assert [item["error"] is None for item in items] == [True, False, False]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["astronaut.png", "run.json"]


def test_refusals_and_usage_errors(lab: Lab, tmp_path: Path, photo: Path) -> None:
    refused = lab.cli("anonymize", photo, "-o", tmp_path / "out", "--case", CASE, user="ivan")
    assert refused.exit_code == 1 and "lacks the role operator" in refused.stderr
    no_key = lab.cli("anonymize", photo, "-o", tmp_path / "out", "--seal-original")
    assert no_key.exit_code == 2 and "--seal-original needs a key" in no_key.stderr
    unknown = lab.cli("anonymize", photo, "-o", tmp_path / "out", "--backend", "nope")
    assert unknown.exit_code == 2 and "unknown backend 'nope'" in unknown.stderr
    clash = lab.cli("anonymize", photo, "-o", photo)
    assert clash.exit_code == 1 and "would overwrite an input" in clash.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert [e.outcome for e in audit_entries(lab, "anonymize")] == ["refused"]


def test_kill_9_mid_batch_leaves_no_output_and_a_sound_vault(
    lab: Lab, tmp_path: Path, astronaut: np.ndarray
) -> None:
    folder, out = tmp_path / "seized", tmp_path / "out"
    folder.mkdir()
    for index in range(6):
        write_image(folder / f"img{index:02d}.png", np.roll(astronaut, 9 * index, axis=1))
    env = {**os.environ, "IFADIT_VAULT": lab.url, "IFADIT_USER": "olga", "IFADIT_PASSPHRASE": "olga"}
    command = [
        sys.executable,
        "-c",
        "from ifadit_cli.main import cli; cli()",
        "anonymize",
        str(folder),
        "-o",
        str(out),
        "--case",
        CASE,
    ]
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob(f"{STAGING_PREFIX}*/*/*.png")):  # the run is midway: some outputs staged
            assert process.poll() is None and time.monotonic() < deadline, (
                "the run ended before it was killed"
            )
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    published = [p for p in out.rglob("*") if not p.relative_to(out).parts[0].startswith(STAGING_PREFIX)]
    assert published == []  # nothing under an output name; only the hidden staging folder may remain
    assert audit_entries(lab, "anonymize") == []  # the run's transaction never committed
    assert lab.cli("audit", "verify", user="audrey").exit_code == 0
    rerun = lab.cli("anonymize", folder, "-o", out, "--case", CASE)
    assert rerun.exit_code == 0, rerun.stderr
    assert len(list(out.glob("img*.png"))) == 6 and len(audit_entries(lab, "anonymize")) == 1


def test_existing_outputs_need_force(lab: Lab, tmp_path: Path, photo: Path) -> None:
    out = tmp_path / "out"
    assert lab.cli("anonymize", photo, "-o", out, "--case", CASE).exit_code == 0
    before = (out / "astronaut.png").stat().st_mtime_ns
    again = lab.cli("anonymize", photo, "-o", out, "--case", CASE)
    assert again.exit_code == 1
    assert again.stderr.splitlines() == [
        f"Error: {out / 'astronaut.png'}: output already exists; nothing was written "
        "(pass --force to overwrite, or choose another -o)"
    ]
    assert (out / "astronaut.png").stat().st_mtime_ns == before and len(audit_entries(lab, "anonymize")) == 1
    forced = lab.cli("anonymize", photo, "-o", out, "--case", CASE, "--force")
    assert forced.exit_code == 0, forced.stderr
    assert len(audit_entries(lab, "anonymize")) == 2


def test_run_index_names_outputs_key_and_entry_but_no_original(
    lab: Lab, tmp_path: Path, astronaut: np.ndarray
) -> None:
    folder, out = tmp_path / "seized", tmp_path / "out"
    (folder / "sub").mkdir(parents=True)
    write_image(folder / "a.png", astronaut)
    write_image(folder / "sub" / "b.jpg", np.fliplr(astronaut))
    done = lab.cli("anonymize", folder, "-o", out, "--case", CASE, "--backend", "pixelate")
    assert done.exit_code == 0, done.stderr
    text = (out / "run.json").read_text()
    (run,) = json.loads(text)["runs"]
    seq = audit_entries(lab, "anonymize")[0].seq
    assert (run["backend"], run["key_handle"], run["key_version"], run["audit_seqs"]) == (
        "pixelate",
        lab.key,
        1,
        [seq],
    )
    assert [(f["input"], f["output"], f["faces"]) for f in run["files"]] == [
        (str(folder / "a.png"), "a.png", 1),
        (str(folder / "sub" / "b.jpg"), "sub/b.jpg", 1),
    ]
    originals = [hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in ("a.png", "sub/b.jpg")]
    assert CASE not in text and not any(digest in text for digest in originals)
    assert run["files"][0]["output_sha256"] == hashlib.sha256((out / "a.png").read_bytes()).hexdigest()


def test_a_run_that_produced_nothing_says_so(lab: Lab, tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("not an image")
    done = lab.cli("anonymize", tmp_path / "notes.png", "-o", tmp_path / "out", "--case", CASE)
    assert done.exit_code == 1
    assert (
        "anonymized 0 of 1 files with" in done.stdout
        and "nothing written; the run is audited as failed" in done.stdout
    )
    (entry,) = audit_entries(lab, "anonymize")
    assert entry.outcome == "failed" and entry.details["error"] == "NothingAnonymized"
    assert (entry.details["files"], entry.details["failed"]) == (0, 1)
    assert not (tmp_path / "out").exists() or not [
        p for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")
    ]


def test_default_output_name_beside_a_single_file(lab: Lab, tmp_path: Path, photo: Path) -> None:
    done = lab.cli("anonymize", photo, "--case", CASE)
    assert done.exit_code == 0, done.stderr
    assert (tmp_path / "astronaut_anonymized.png").is_file()
    beside = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("astronaut"))
    assert beside == ["astronaut.png", "astronaut_anonymized.png"]  # no run index beside a single file
    folder = lab.cli("anonymize", tmp_path, "--case", CASE)
    assert folder.exit_code == 2 and "-o is required for a folder or several inputs" in folder.stderr


def test_a_foreign_run_json_is_refused_before_any_work(lab: Lab, tmp_path: Path, photo: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "run.json").write_text('{"mine": true}')
    done = lab.cli("anonymize", photo, "-o", tmp_path / "out", "--case", CASE)
    assert done.exit_code == 1 and "run.json: exists and is not an ifadit-runs/1 run index" in done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["run.json"] and not audit_entries(
        lab, "anonymize"
    )
