"""`ifadit train encoder` and `ifadit train flow` through click: tiny runs on the real dlib recognizer, resume,
and usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from ifadit.models.ifadit.checkpoint import load_ifadit, read_ifadit_config
from ifadit_cli.main import cli
from tests.ifadit_support import astronaut_crops, crops_npz, save_tiny_generator

FAST = ["--batch", "2", "--threads", "1", "--sample-every", "1"]


@pytest.fixture()
def inputs(tmp_path: Path, astronaut: np.ndarray) -> tuple[Path, Path]:
    return save_tiny_generator(tmp_path / "gen"), crops_npz(tmp_path, astronaut_crops(astronaut, 4))


def test_encoder_then_flow_then_resume(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    generator, data = inputs
    runner = CliRunner()
    enc, flow = tmp_path / "enc", tmp_path / "flow"
    args = ["train", "encoder", "--generator", generator, "--data", data, "--out", enc, "--steps", "1"]
    first = runner.invoke(cli, [str(a) for a in [*args, "--stats-samples", "4", *FAST]])
    assert first.exit_code == 0, first.output
    assert f"{enc}: step 1" in first.stdout and (enc / "samples-latest.png").is_file()
    model, _, _ = load_ifadit(enc / "model")  # the production recognizer, loaded by name
    assert model.config.flow.dim == 128 and type(model.recognizer).__name__ == "DlibResNet"

    args = ["train", "flow", "--encoder", enc, "--data", data, "--out", flow, "--steps", "1"]
    done = runner.invoke(cli, [str(a) for a in [*args, *FAST, "--weight", "fidelity=2.5"]])
    assert done.exit_code == 0, done.output
    flow_options = json.loads((flow / "options.json").read_text())
    assert flow_options["w_fidelity"] == 2.5 and flow_options["w_anonymity"] == 1.0
    again = runner.invoke(cli, [str(a) for a in [*args, *FAST]])
    assert again.exit_code == 1 and "already holds a run" in again.output
    resumed = runner.invoke(
        cli, ["train", "flow", "--out", str(flow), "--resume", "--steps", "2", "--threads", "1"]
    )
    assert resumed.exit_code == 0, resumed.output
    assert f"{flow}: step 2" in resumed.stdout
    assert json.loads((flow / "checkpoints" / "latest.json").read_text())["step"] == 2
    assert json.loads((flow / "options.json").read_text())["encoder"] == str(enc)

    more = tmp_path / "enc-more"  # phase 1 continued from the first run's model
    args = ["train", "encoder", "--init", enc / "model", "--data", data, "--out", more, "--steps", "1"]
    weighted = [*FAST, "--weight", "leak=2", "--margin", "0.25"]
    continued = runner.invoke(cli, [str(a) for a in [*args, *weighted]])
    assert continued.exit_code == 0, continued.output
    options = json.loads((more / "options.json").read_text())
    assert (options["w_leak"], options["margin"], options["w_identity"]) == (2.0, 0.25, 1.0)
    assert options["init"] == options["generator"] == str(enc / "model")
    assert options["init_model_id"] == read_ifadit_config(enc / "model")["model_id"]  # lineage for the card
    assert options["swap_generator"] is None

    swapped = tmp_path / "enc-swapped"  # phase 1 continued onto another generator folder
    other = save_tiny_generator(tmp_path / "gen-other", seed=11)
    args = [*args[:-4], "--generator", other, "--out", swapped, "--steps", "1"]
    moved = runner.invoke(cli, [str(a) for a in [*args, *FAST]])
    assert moved.exit_code == 0, moved.output
    options = json.loads((swapped / "options.json").read_text())
    assert (options["init"], options["swap_generator"]) == (str(enc / "model"), str(other))
    model, _, _ = load_ifadit(swapped / "model")
    reference = load_file(str(other / "model.safetensors"))
    assert all(torch.equal(v, reference[k]) for k, v in model.generator.state_dict().items())


def test_new_runs_need_their_inputs(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(cli, ["train", "encoder", "--out", str(tmp_path / "x"), "--data", str(inputs[1])])
    assert missing.exit_code == 2 and "--generator and --data are required" in missing.output
    for bad, says in [("looks=1", "unknown term 'looks'"), ("fidelity=much", "must be a number")]:
        refused = runner.invoke(cli, ["train", "flow", "--out", str(tmp_path / "v"), "--weight", bad])
        assert refused.exit_code == 2 and says in refused.output
    refused = runner.invoke(
        cli, ["train", "encoder", "--out", str(tmp_path / "v"), "--weight", "anonymity=1"]
    )
    assert (
        refused.exit_code == 2 and "unknown term 'anonymity'" in refused.output and "leak" in refused.output
    )
    assert not (tmp_path / "v").exists()
    missing = runner.invoke(cli, ["train", "flow", "--out", str(tmp_path / "y")])
    assert missing.exit_code == 2 and "--encoder and --data are required" in missing.output
    nothing = runner.invoke(cli, ["train", "flow", "--out", str(tmp_path / "z"), "--resume"])
    assert nothing.exit_code == 1 and "options.json: missing" in nothing.output
