"""Issue 26's acceptance as one story: a lab's day with a case, from seized photos to the auditor's page.

An operator anonymizes a folder, an investigator files ONE request for the whole released folder, a second
person approves it, the investigator restores the folder, and an auditor renders the case report, which
headless Chromium shows with every event of the day.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ifadit.media.image import read_image
from tests.cli.test_audit_report_cli import _browse, _ok
from tests.cli.test_restore_case_cli import _case_folder
from tests.pipeline.support import CASE, make_lab


def test_a_case_from_seized_folder_to_audit_report(
    tmp_path: Path, astronaut: np.ndarray, chromium: str
) -> None:
    lab = make_lab(tmp_path)
    photos = _case_folder(tmp_path, astronaut)
    _ok(lab, "keys", "issue", "--case", CASE, "--purpose", "CCTV release", user="admin")
    released, restored = tmp_path / "released", tmp_path / "restored"
    _ok(lab, "anonymize", tmp_path / "seized", "-o", released, "--case", CASE, "--backend", "pixelate",
        "--seal-original", user="olga")  # fmt: skip

    restore = ("restore", released, "-o", restored, "--case", CASE, "--exact", "--reason", "warrant 2026/114")
    request = _ok(lab, *restore, "--request-only", user="ivan").strip()
    assert request.startswith("rq_")
    shown = _ok(lab, "requests", "show", request, user="alice")
    assert "cam1.png" in shown and "cam2.png" in shown and "exact" in shown  # the approver sees what and how
    _ok(lab, "requests", "approve", request, user="alice")
    _ok(lab, *restore, "--request", request, user="ivan")
    for name, original in photos.items():
        assert np.array_equal(read_image(restored / name), original), name

    page = tmp_path / "case.html"
    _ok(lab, "audit", "report", "--case", CASE, "-o", page, user="audrey")
    _, text = _browse(chromium, page, tmp_path / "case.png")
    for phrase in (
        f"Case {CASE}",
        "admin issued key kh_",
        "olga anonymized 2 files",
        f"ivan asked to restore faces (request {request})",
        f"alice approved request {request}",
        "ivan restored 2 faces (exact: the original pixels)",
        "Who did what, under which role",
    ):
        assert phrase in text, phrase
