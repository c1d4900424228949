"""`ifadit audit report` end to end: a case run through the CLI, rendered by headless Chromium, read back as text.

Chromium comes from Debian (`apt-get install chromium`); when it is missing the test installs it, and
skips with the reason only outside CI (env CI unset) when that fails.
"""

from __future__ import annotations

import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ifadit.media.image import write_image
from tests.pipeline.support import Lab, make_lab

CASE = "C-42"
ATTACK = "<script>document.body.setAttribute('data-pwned','1')</script>"
INTACT_GREEN, FAULT_RED = (0x17, 0x70, 0x3A), (0xB4, 0x23, 0x18)  # the status box's border colours


_BOXES = {"td", "th", "dt", "dd", "p", "div", "tr", "h1", "h2", "pre", "span", "section", "header", "footer"}


class _Text(HTMLParser):
    """The visible text of a DOM dump (script and style contents dropped), whitespace collapsed."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.hidden = 0
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.scripts += tag == "script"
        self.hidden += tag in ("script", "style")
        self.parts.append(" " if tag in _BOXES else "")

    def handle_endtag(self, tag: str) -> None:
        self.hidden -= tag in ("script", "style")
        self.parts.append(" " if tag in _BOXES else "")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)

    def text(self) -> str:
        return " ".join("".join(self.parts).split())


def _browse(chromium: str, page: Path, png: Path) -> tuple[str, str]:
    """Render `page` to `png` and return (the rendered DOM, its visible text)."""
    profile = page.parent / f".{page.stem}-profile"
    base = [chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}"]
    shot = subprocess.run(
        [*base, f"--screenshot={png}", "--window-size=1280,2000", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.returncode == 0 and png.stat().st_size > 10_000, shot.stderr[-2000:]
    dom = subprocess.run(
        [*base, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    parser = _Text()
    parser.feed(dom)
    assert parser.scripts == 0  # nothing in the page became a script element
    return dom, parser.text()


def _has_colour(png: Path, colour: tuple[int, int, int]) -> bool:
    image = Image.open(png).convert("RGB")
    pixels = np.asarray(image).reshape(-1, 3).astype(int)
    return bool((np.abs(pixels - colour).max(axis=1) <= 2).sum() > 500)  # a border, not a stray pixel


def _ok(lab: Lab, *args: str | Path, user: str) -> str:
    result = lab.cli(*args, user=user)
    assert result.exit_code == 0, result.stderr
    return result.stdout


@pytest.fixture
def case_run(tmp_path: Path, astronaut: np.ndarray) -> tuple[Lab, Path]:
    """Issue a key, anonymize, request (a reason holding a script), approve as a second user, restore, refuse."""
    lab = make_lab(tmp_path)
    _ok(lab, "keys", "issue", "--case", CASE, "--purpose", "CCTV release", user="admin")
    write_image(tmp_path / "in.png", astronaut)
    anonymize = ("anonymize", tmp_path / "in.png", "-o", tmp_path / "out.png", "--case", CASE)
    _ok(lab, *anonymize, "--backend", "blur", "--seal-original", user="olga")
    restore = ("restore", tmp_path / "out.png", "-o", tmp_path / "back.png", "--case", CASE, "--exact")
    request = _ok(lab, *restore, "--reason", f"court order 7 {ATTACK}", "--request-only", user="ivan").strip()
    _ok(lab, "approve", request, user="alice")
    _ok(lab, *restore, "--reason", "court order 7", user="ivan")
    olga = ("restore", tmp_path / "out.png", "-o", tmp_path / "olga.png", "--case", CASE, "--exact")
    assert lab.cli(*olga, "--reason", "curious", user="olga").exit_code == 1  # refused: no role
    return lab, tmp_path


def test_report_of_a_case_in_a_real_browser(case_run: tuple[Lab, Path], chromium: str) -> None:
    lab, folder = case_run
    _ok(lab, "audit", "checkpoint", "-o", folder / "kept.cp", user="audrey")
    excerpt = folder / f"{CASE}.audit.jsonl"
    _ok(
        lab,
        "audit",
        "export",
        "--case",
        CASE,
        "-o",
        excerpt,
        "--public-key-out",
        folder / "lab.pub",
        user="audrey",
    )
    wrote = lab.cli(
        "audit", "report", "--case", CASE, "--bundle", excerpt, "--public-key", folder / "lab.pub",
        "--since", folder / "kept.cp", "-o", folder / "report.html", user="audrey",
    )  # fmt: skip
    assert wrote.exit_code == 0 and "log verified" in wrote.stdout, wrote.stderr
    assert "<script" not in (folder / "report.html").read_text()

    dom, text = _browse(chromium, folder / "report.html", folder / "report.png")
    body = re.search(r"<body[^>]*>", dom)
    assert body is not None and "data-pwned" not in body.group(0)  # the reason's script never ran
    expected = [
        f"Case {CASE}",
        f"the exported file {excerpt.name}, read offline",
        "Verified: the excerpt is intact.",
        "Proven against a kept checkpoint (kept.cp)",
        "admin issued key kh_",
        "for this case (purpose: CCTV release).",
        "olga anonymized 1 file (1 face) with the blur backend under key kh_",
        "originals sealed for an exact restore",
        "ivan asked to restore faces (request rq_",
        f"Reason given: court order 7 {ATTACK}",
        "alice approved request rq_",
        "ivan restored 1 face (exact: the original pixels)",
        "olga tried restoring faces; refused: user olga lacks the role investigator",
        "audrey exported the audit log (excerpt: case C-42)",
        "Who did what, under which role",
        "No thumbnails.",
    ]
    for phrase in expected:
        assert phrase in text, phrase
    assert "pipeline tests" not in text  # the lab's other case (C-17) stays hidden
    assert _has_colour(folder / "report.png", INTACT_GREEN) and not _has_colour(
        folder / "report.png", FAULT_RED
    )

    live = lab.cli("audit", "report", "--case", CASE, "-o", folder / "live.html", user="audrey")
    assert live.exit_code == 0, live.stderr
    _, live_text = _browse(chromium, folder / "live.html", folder / "live.png")
    assert "Source the live vault sqlite:///" in live_text and "ivan restored 1 face" in live_text


def test_tampered_bundle_shows_the_fault(case_run: tuple[Lab, Path], chromium: str) -> None:
    lab, folder = case_run
    excerpt = folder / "case.jsonl"
    _ok(lab, "audit", "export", "--case", CASE, "-o", excerpt, user="audrey")
    lines = excerpt.read_bytes().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if b'"action":"restore.approve"' in line)
    lines[at] = lines[at].replace(b'"actor":"alice"', b'"actor":"ivan"')  # self-approval, disguised
    excerpt.write_bytes(b"".join(lines))

    failed = lab.cli(
        "audit", "report", "--case", CASE, "--bundle", excerpt, "-o", folder / "bad.html", user="audrey"
    )
    assert failed.exit_code == 4 and f"entry {at} was altered" in failed.stderr
    assert "was written and shows the fault" in failed.stderr
    _, text = _browse(chromium, folder / "bad.html", folder / "bad.png")
    assert "Verification failed: the audit log was altered or the file is damaged." in text
    assert f"entry {at} was altered" in text and "the located fault" in text
    assert f"Entries from {at} on cannot be trusted" in text
    assert _has_colour(folder / "bad.png", FAULT_RED) and not _has_colour(folder / "bad.png", INTACT_GREEN)


def test_a_case_without_entries_is_named(tmp_path: Path) -> None:
    lab = make_lab(tmp_path)
    result = lab.cli("audit", "report", "--case", "C-404", "-o", tmp_path / "empty.html", user="audrey")
    assert result.exit_code == 0 and "the log holds no action on case 'C-404'" in result.stderr
    assert "audrey exported the audit log (excerpt: case C-404)." in (tmp_path / "empty.html").read_text()
    usage = lab.cli(
        "audit", "report", "--case", "C-17", "--public-key", tmp_path / "k", "-o", tmp_path / "x.html"
    )
    assert usage.exit_code == 2 and "--public-key pins the key of a --bundle" in usage.stderr
