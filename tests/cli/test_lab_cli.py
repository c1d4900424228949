"""`ifadit train generator` end to end through click: a tiny run, its resume, and usage errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from ifadit_cli.main import cli

TINY = [
    "--threads",
    "1",
    "--resolution",
    "16",
    "--batch",
    "4",
    "--channel-base",
    "128",
    "--channel-max",
    "16",
    "--z-dim",
    "16",
]


@pytest.fixture()
def npz(tmp_path: Path, astronaut: np.ndarray) -> Path:
    crops = [
        np.asarray(Image.fromarray(astronaut[40 + 5 * i : 200 + 5 * i, 160:320]).resize((16, 16)))
        for i in range(4)
    ]
    path = tmp_path / "crops.npz"
    np.savez(path, images=np.stack(crops), names=np.array([str(i) for i in range(4)]))
    return path


def test_train_then_resume(npz: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    runner = CliRunner()
    first = runner.invoke(
        cli, ["train", "generator", "--data", str(npz), "--out", str(run), "--steps", "2", *TINY]
    )
    assert first.exit_code == 0, first.output
    assert f"{run}: step 2" in first.stdout
    assert json.loads((run / "checkpoints" / "latest.json").read_text())["step"] == 2

    again = runner.invoke(
        cli, ["train", "generator", "--data", str(npz), "--out", str(run), "--steps", "3", *TINY]
    )
    assert again.exit_code == 1 and "already holds a run" in again.output

    resumed = runner.invoke(
        cli, ["train", "generator", "--out", str(run), "--resume", "--steps", "3", "--threads", "1"]
    )
    assert resumed.exit_code == 0, resumed.output
    assert f"{run}: step 3" in resumed.stdout
    assert json.loads((run / "options.json").read_text())["channel_max"] == 16  # the run's own options


def test_discriminator_width_and_ema_half_life_reach_the_run_options(npz: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    extra = ["--d-channel-base", "256", "--d-channel-max", "32", "--ema-kimg", "2.5"]
    result = CliRunner().invoke(
        cli, ["train", "generator", "--data", str(npz), "--out", str(run), "--steps", "1", *TINY, *extra]
    )
    assert result.exit_code == 0, result.output
    options = json.loads((run / "options.json").read_text())
    assert (options["d_channel_base"], options["d_channel_max"], options["ema_kimg"]) == (256, 32, 2.5)
    assert (options["channel_base"], options["channel_max"]) == (128, 16)
    bad = CliRunner().invoke(
        cli, ["train", "generator", "--data", str(npz), "--out", str(tmp_path / "x"), "--ema-kimg", "0"]
    )
    assert bad.exit_code == 2 and "--ema-kimg" in bad.output


def test_init_generator_takes_its_width_unless_a_wider_one_is_given(npz: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(
        cli, ["train", "generator", "--data", str(npz), "--out", str(tmp_path / "a"), "--steps", "1", *TINY]
    )
    assert first.exit_code == 0, first.output
    init = tmp_path / "a" / "checkpoints" / "step-0000001" / "G_ema"
    for name, extra, width in [("same", [], (128, 16)), ("wide", ["--channel-max", "32"], (128, 32))]:
        args = ["train", "generator", "--data", str(npz), "--out", str(tmp_path / name), "--steps", "1"]
        result = runner.invoke(cli, [*args, "--threads", "1", "--init-generator", str(init), *extra])
        assert result.exit_code == 0, result.output
        options = json.loads((tmp_path / name / "options.json").read_text())
        assert (options["channel_base"], options["channel_max"]) == width


def test_new_run_needs_data(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["train", "generator", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "--data is required" in result.output


def test_sigterm_writes_a_checkpoint_before_exiting(npz: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = [
        "train",
        "generator",
        "--data",
        str(npz),
        "--out",
        str(run),
        "--checkpoint-minutes",
        "1000",
        *TINY,
    ]
    proc = subprocess.Popen(
        [sys.executable, "-c", "from ifadit_cli.main import cli; cli()", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    metrics = run / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (
        not metrics.is_file() or len(metrics.read_text().splitlines()) < 3
    ):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 1  # click reports the interruption as "Aborted!"
    latest = json.loads((run / "checkpoints" / "latest.json").read_text())
    assert latest["step"] >= 3
