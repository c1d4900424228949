"""Issue 26: a case restored as one batch through the CLI, on SQLite and PostgreSQL.

One request for a whole folder, approved by a second user, a quorum, deny and cancel, `--request ID`, a
second request that does not hide the approved one, exit 3 with the request as JSON, requests bound to
their files and mode, `--force`, and the corner label and notice of a model restore.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ifadit.media.image import read_image, write_image
from ifadit.pipeline import restore_item
from keyvault import access
from tests.keyvault.support import cheap_kdf, vault_url  # noqa: F401
from tests.pipeline.support import CASE, Lab, audit_entries, keyed_backend, make_lab  # noqa: F401

RESTORE = ("--case", CASE, "--reason", "warrant 2026/114")


@pytest.fixture
def lab(tmp_path: Path, vault_url: str) -> Lab:  # noqa: F811
    return make_lab(tmp_path, vault_url)  # SQLite file or PostgreSQL schema; restores need an approval


def _case_folder(tmp_path: Path, astronaut: np.ndarray) -> dict[str, np.ndarray]:
    """Two seized photos, one in a sub-folder: relative path -> pixels."""
    photos = {"cam1.png": astronaut, "day2/cam2.png": np.ascontiguousarray(astronaut[:, ::-1])}
    for name, pixels in photos.items():
        (tmp_path / "seized" / name).parent.mkdir(parents=True, exist_ok=True)
        write_image(tmp_path / "seized" / name, pixels)
    return photos


def _release(lab: Lab, tmp_path: Path, astronaut: np.ndarray, backend: str) -> dict[str, np.ndarray]:
    """The case folder anonymized with `backend` and sealed originals into released/: relative path -> original."""
    photos = _case_folder(tmp_path, astronaut)
    released = tmp_path / "released"
    done = lab.cli(
        "anonymize",
        tmp_path / "seized",
        "-o",
        released,
        "--case",
        CASE,
        "--backend",
        backend,
        "--seal-original",
    )
    assert done.exit_code == 0, done.stderr
    return photos


@pytest.fixture
def released(lab: Lab, tmp_path: Path, astronaut: np.ndarray) -> dict[str, np.ndarray]:
    """The case folder anonymized with pixelate (exact restores only)."""
    return _release(lab, tmp_path, astronaut, "pixelate")


def _request(result_stderr: str) -> str:
    match = re.search(r"request (rq_[0-9a-f]+)", result_stderr)
    assert match, result_stderr
    return match.group(1)


def test_a_case_folder_is_restored_under_one_request_approved_by_a_second_user(
    lab: Lab, released: dict[str, np.ndarray], tmp_path: Path
) -> None:
    out = tmp_path / "restored"
    pending = lab.cli("restore", tmp_path / "released", "-o", out, *RESTORE, "--exact", "--json", user="ivan")
    assert pending.exit_code == 3 and not out.exists()
    request = json.loads(pending.stdout)  # exit 3 with --json: the request itself
    assert (
        request["state"] == "pending"
        and request["mode"] == "exact"
        and _request(pending.stderr) == request["handle"]
    )
    names = sorted(f["name"] for f in request["files"])
    assert names == [
        str(tmp_path / "released" / "cam1.png"),
        str(tmp_path / "released" / "day2" / "cam2.png"),
    ]

    shown = lab.cli("requests", "show", request["handle"], user="alice")  # what the approver sees
    assert shown.exit_code == 0 and "mode     exact" in shown.stdout and "warrant 2026/114" in shown.stdout
    assert "cam1.png" in shown.stdout and "day2/cam2.png" in shown.stdout
    listed = lab.cli("requests", "list", "--state", "pending", user="alice")
    assert listed.stdout.startswith("REQUEST") and request["handle"] in listed.stdout
    approved = lab.cli("requests", "approve", request["handle"], user="alice")
    assert approved.exit_code == 0 and "1 of 1 approvals, now approved" in approved.stdout

    done = lab.cli("restore", tmp_path / "released", "-o", out, *RESTORE, "--exact", "--json", user="ivan")
    assert done.exit_code == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["request"] == request["handle"] and report["faces_restored"] == 2
    assert done.stderr.count("restored 1 of 1 faces (exact)") == 2  # a line per file
    for name, original in released.items():
        assert np.array_equal(read_image(out / name), original)
        assert json.loads((out / f"{name}.restore.json").read_text())["approvals"][0]["approver"] == "alice"
    assert [e.outcome for e in audit_entries(lab, "restore.request")] == ["ok"]  # one request for the case
    [restored] = [e for e in audit_entries(lab, "restore") if e.outcome == "ok"]
    assert restored.details["files"] == 2 and restored.details["request"] == request["handle"]


def test_quorum_of_two_distinct_approvers(lab: Lab, released: dict[str, np.ndarray], tmp_path: Path) -> None:
    assert lab.cli("vault", "policy", "--approvals", "2", user="admin").exit_code == 0
    args = ("restore", tmp_path / "released", "-o", tmp_path / "restored", *RESTORE, "--exact")
    request = _request(lab.cli(*args, user="ivan").stderr)
    assert lab.cli("approve", request, user="alice").exit_code == 0  # the alias of `requests approve`
    twice = lab.cli("requests", "approve", request, user="alice")
    assert twice.exit_code == 1 and f"alice already approved request {request}" in twice.stderr
    short = lab.cli(*args, user="ivan")
    assert short.exit_code == 3 and "awaits approval (1 of 2)" in short.stderr
    own = lab.cli("requests", "approve", request, user="ivan")
    assert own.exit_code == 1 and "lacks the role approver" in own.stderr
    with lab.open("admin") as vault:
        access.add_user(vault, "bert", ["approver"], b"bert", kdf=cheap_kdf())
    assert lab.cli("requests", "approve", request, user="bert").exit_code == 0
    assert lab.cli(*args, user="ivan").exit_code == 0


def test_deny_and_cancel_are_final_and_audited(
    lab: Lab, released: dict[str, np.ndarray], tmp_path: Path
) -> None:
    args = ("restore", tmp_path / "released", "-o", tmp_path / "restored", *RESTORE, "--exact")
    withdrawn = lab.cli(*args, "--request-only", user="ivan").stdout.strip()
    cancelled = lab.cli("requests", "cancel", withdrawn, "--reason", "filed too early", user="ivan")
    assert cancelled.exit_code == 0 and f"cancelled {withdrawn}" in cancelled.stdout
    refused = lab.cli("requests", "approve", withdrawn, user="alice")
    assert refused.exit_code == 1 and "was cancelled by ivan" in refused.stderr
    denied = lab.cli(*args, "--request-only", user="ivan").stdout.strip()
    assert lab.cli("requests", "deny", denied, "--reason", "no warrant for day2", user="alice").exit_code == 0
    used = lab.cli(*args, "--request", denied, user="ivan")
    assert used.exit_code == 1 and f"request {denied} was denied by alice: restore refused" in used.stderr
    assert not (tmp_path / "restored").exists()
    shown = json.loads(lab.cli("requests", "show", denied, "--json", user="audrey").stdout)
    assert (shown["state"], shown["closed_by"], shown["closed_reason"]) == (
        "denied",
        "alice",
        "no warrant for day2",
    )
    closed = [
        (e.action, e.actor, e.reason)
        for e in audit_entries(lab)
        if e.action in ("restore.deny", "restore.cancel")
    ]
    assert closed == [
        ("restore.cancel", "ivan", "filed too early"),
        ("restore.deny", "alice", "no warrant for day2"),
    ]


def test_request_id_and_a_second_request_that_does_not_hide_the_approved_one(
    lab: Lab, released: dict[str, np.ndarray], tmp_path: Path
) -> None:
    args = ("restore", tmp_path / "released", "-o", tmp_path / "restored", *RESTORE, "--exact")
    first = lab.cli(*args, "--request-only", user="ivan").stdout.strip()
    assert lab.cli("requests", "approve", first, user="alice").exit_code == 0
    second = lab.cli(*args, "--request-only", user="ivan").stdout.strip()
    assert second != first
    waiting = lab.cli(*args, "--request", second, "--json", user="ivan")
    assert waiting.exit_code == 3 and json.loads(waiting.stdout)["handle"] == second
    done = lab.cli(*args, "--json", user="ivan")  # no --request: the approved one, not the newer pending one
    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout)["request"] == first


def test_a_request_is_bound_to_its_mode_and_its_files(
    lab: Lab,
    tmp_path: Path,
    astronaut: np.ndarray,
    keyed_backend: str,  # noqa: F811
) -> None:
    _release(lab, tmp_path, astronaut, keyed_backend)  # reversible, and sealed: both modes restore
    folder = tmp_path / "released"
    model = lab.cli(
        "restore", folder, "-o", tmp_path / "r", *RESTORE, "--request-only", user="ivan"
    ).stdout.strip()
    assert lab.cli("requests", "approve", model, user="alice").exit_code == 0
    exact = lab.cli(
        "restore", folder, "-o", tmp_path / "r", *RESTORE, "--exact", "--request", model, user="ivan"
    )
    assert (
        exact.exit_code == 1
        and f"request {model} was approved for a model restore, not exact" in exact.stderr
    )

    request = lab.cli(
        "restore", folder, "-o", tmp_path / "r", *RESTORE, "--exact", "--request-only", user="ivan"
    )
    handle = request.stdout.strip()
    assert lab.cli("requests", "approve", handle, user="alice").exit_code == 0
    write_image(
        tmp_path / "other.png", np.clip(astronaut.astype(int) + 12, 0, 255).astype(np.uint8)
    )  # a file the approver never saw
    added = lab.cli(
        "anonymize", tmp_path / "other.png", "-o", folder / "other.png", "--case", CASE, "--seal-original",
        "--backend", keyed_backend,
    )  # fmt: skip
    assert added.exit_code == 0, added.stderr
    changed = lab.cli(
        "restore", folder, "-o", tmp_path / "r", *RESTORE, "--exact", "--request", handle, user="ivan"
    )
    assert changed.exit_code == 1 and "approved for other inputs" in changed.stderr
    assert not (tmp_path / "r").exists()
    assert (
        json.loads(lab.cli("requests", "show", handle, "--json", user="ivan").stdout)["state"] == "approved"
    )


def test_existing_outputs_need_force(lab: Lab, released: dict[str, np.ndarray], tmp_path: Path) -> None:
    lab.require_approval(False)
    out = tmp_path / "restored"
    args = ("restore", tmp_path / "released", "-o", out, *RESTORE, "--exact")
    assert lab.cli(*args, user="ivan").exit_code == 0
    write_image(out / "cam1.png", np.zeros((8, 8, 3), np.uint8))  # someone's edit the rerun must not lose
    again = lab.cli(*args, user="ivan")
    assert again.exit_code == 1 and "already exists (and 1 more): nothing was restored" in again.stderr
    assert "--force" in again.stderr and read_image(out / "cam1.png").shape == (8, 8, 3)
    forced = lab.cli(*args, "--force", user="ivan")
    assert forced.exit_code == 0, forced.stderr
    assert np.array_equal(read_image(out / "cam1.png"), released["cam1.png"])
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no staging left behind


def test_a_model_restore_carries_the_corner_label_and_the_notice(
    lab: Lab,
    tmp_path: Path,
    astronaut: np.ndarray,
    keyed_backend: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lab.require_approval(False)
    write_image(tmp_path / "in.png", astronaut)
    done = lab.cli(
        "anonymize",
        tmp_path / "in.png",
        "-o",
        tmp_path / "out.png",
        "--case",
        CASE,
        "--backend",
        keyed_backend,
    )
    assert done.exit_code == 0, done.stderr
    labelled = lab.cli(
        "restore", tmp_path / "out.png", "-o", tmp_path / "labelled.png", *RESTORE, user="ivan"
    )
    assert labelled.exit_code == 0, labelled.stderr
    report = json.loads((tmp_path / "labelled.png.restore.json").read_text())
    assert report["notice"] == "model restore: investigative lead" and "measured" in report
    assert Image.open(tmp_path / "labelled.png").text["ifadit-restore"] == "model restore: investigative lead"

    monkeypatch.setattr(restore_item, "draw_label", lambda image, faces: (image, None))
    plain = lab.cli("restore", tmp_path / "out.png", "-o", tmp_path / "plain.png", *RESTORE, user="ivan")
    assert plain.exit_code == 0, plain.stderr
    x0, y0, x1, y1 = report["label_box"]
    height, width = astronaut.shape[:2]
    assert (x0, y0) != (0, 0) or (x1, y1) != (width, height)  # a corner, not the picture
    assert (x0 in (0, width - (x1 - x0))) and (y0 in (0, height - (y1 - y0)))
    face = (175, 76, 265, 166)  # the astronaut's face: the label keeps off it
    assert x1 <= face[0] or x0 >= face[2] or y1 <= face[1] or y0 >= face[3]
    differ = np.any(read_image(tmp_path / "labelled.png") != read_image(tmp_path / "plain.png"), axis=2)
    inside = np.zeros_like(differ)
    inside[y0:y1, x0:x1] = True
    assert differ[inside].mean() > 0.05 and not differ[~inside].any()
    assert 10 <= y1 - y0 <= height // 10  # small, and tall enough to read
