"""`ifadit anonymize` through click's runner on real photos and a real vault: outputs, JSON, errors, exits."""

from __future__ import annotations

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
    assert "restored 1 of 1 faces (exact)" in restored.stdout
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
    assert done.stderr.strip().splitlines() == [
        f"Error: {tmp_path / 'notes.png'}: not a recognised image file",
        f"Error: {tmp_path / 'missing.jpg'}: no such file",
    ]
    items = json.loads(done.stdout)["items"]
    assert [item["error"] is None for item in items] == [True, False, False]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["astronaut.png"]


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
        "from cli.main import cli; cli()",
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
