"""`ifadit eval`: one real run on a small subset of reid/dlib-johns with the blur baseline, and usage errors."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from ifadit_cli.main import cli
from tests.pipeline.support import audit_entries, make_lab


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["eval", *args], catch_exceptions=False)


def test_blur_on_a_subset_writes_the_report(shared_dir: Path, tmp_path: Path) -> None:
    data = shared_dir / "data" / "reid" / "dlib-johns"
    out = tmp_path / "report"
    result = run(
        "--data", str(data), "--backend", "blur", "--recognizer", "dlib", "--limit", "6", "-o", str(out)
    )
    assert result.exit_code == 0, result.output
    header, row = result.stdout.splitlines()[:2]
    assert header.split()[:3] == ["backend", "dlib", "verif"] and row.startswith("blur")
    assert {p.name for p in out.iterdir()} == {
        "metrics.json",
        "report.md",
        "anonymity.png",
        "tradeoff.png",
        "samples.png",
    }
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["faces"] == 6 and metrics["backends"][0]["backend"] == "blur"
    assert metrics["backends"][0]["reversible_metrics"] is None
    assert 0.0 <= metrics["backends"][0]["anonymity"][0]["verification"] <= 1.0
    assert "# Evaluation of blur" in (out / "report.md").read_text()
    assert all(
        (out / p).read_bytes()[:4] == b"\x89PNG" for p in ("anonymity.png", "tradeoff.png", "samples.png")
    )
    assert "evaluating blur on 6 faces" in result.stderr


def test_help_has_an_example_and_defaults() -> None:
    result = run("run", "--help")  # plain `ifadit eval -h` lists run and tables
    assert result.exit_code == 0
    assert "Example:" in result.output and "--random-keys" in result.output and "default: 8" in result.output


def test_missing_backend_is_a_usage_error(tmp_path: Path) -> None:
    result = run("--data", str(tmp_path), "-o", str(tmp_path / "out"))
    assert result.exit_code == 2 and "--backend" in result.output


def test_a_vault_key_is_unsealed_for_use_and_audited(shared_dir: Path, tmp_path: Path) -> None:
    lab = make_lab(tmp_path)
    data = shared_dir / "data" / "reid" / "dlib-johns"
    out = tmp_path / "report"
    args = ("--data", data, "--backend", "mask", "--recognizer", "dlib", "--limit", "4", "--random-keys", "0")
    result = lab.cli("eval", *args, "--key", lab.key, "--json", "-o", out)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["keys"] == 1
    uses = audit_entries(lab, "key.use")
    assert len(uses) == 1 and uses[0].key_handle == lab.key and lab.key not in (out / "report.md").read_text()


def test_sheet_draws_photos_of_a_set_with_the_shipped_model(shared_dir: Path, tmp_path: Path) -> None:
    import shutil

    import pytest

    from ifadit.backends.ifadit import is_shipped

    if not is_shipped():
        pytest.skip("pretrained/ifadit-64 is not in this checkout")
    person = sorted((shared_dir / "data" / "reid" / "dlib-johns").glob("*"))[0]
    data = tmp_path / "dlib-johns" / person.name
    data.mkdir(parents=True)
    shutil.copy(sorted(person.glob("*.jpg"))[0], data)
    out = tmp_path / "sheet.jpg"
    result = CliRunner().invoke(
        cli, ["eval", "sheet", "--data", str(data.parent), "--count", "1", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "(1 photos, 1 faces)" in result.output and out.read_bytes()[:2] == b"\xff\xd8"
