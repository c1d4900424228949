"""Restore requests through a real vault service on loopback, as against a local vault (issues 25 and 26).

An investigator files one request for two files (names and SHA-256s only: no key material leaves or
enters the workstation); approvers list and show it (file names, mode, reason) and approve it under a
quorum of two distinct approvers; the requester (an approver too) can neither approve nor deny, an approver cannot
cancel; a plain `restore` files or finds the request and exits 3 while it is pending (with --json, the
request), and once it is approved sends the files to the service, which restores them bit for bit. No output carries a
passphrase, a share or a token.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
from click.testing import Result

from ifadit.media.image import read_image
from keyvault.service import tokenfile
from tests.cli.test_restore_case_cli import _case_folder
from tests.cli.test_service_cli import (  # noqa: F401
    assert_no_secret,
    error,
    ok,
    run,
    service,
    shares,
    staff,
)
from tests.keyvault.service.support import RunningService
from tests.keyvault.support import vault_url  # noqa: F401  (fixture: SQLite file or PostgreSQL schema)

PASSPHRASES = {
    "admin": "admin-pass",
    "olga": "olga-pass",
    "ivan": "ivan-pass",
    "ann": "ann-pass",
    "bob": "bob-pass",
}
ROLES = {
    "olga": ("operator",),
    "ivan": ("investigator", "approver"),
    "ann": ("approver",),
    "bob": ("approver",),
}


def _lab(service: RunningService, shares: list[str], tmp_path: Path) -> list[str]:  # noqa: F811
    """Unseal, add the investigator and two approvers, quorum 2, everyone logged in; the --vault args."""
    url = staff(service, shares, tmp_path, ROLES, PASSPHRASES)
    assert "approvers per request: 2" in ok(
        run("vault", "policy", *url, "--require-approval", "yes", "--approvals", "2")
    )
    return url


def _photos(tmp_path: Path, url: list[str], case: str, astronaut: np.ndarray) -> list[str]:
    """Two seized photos of the case anonymized with sealed originals through the service (by olga)."""
    originals = _case_folder(tmp_path, astronaut)
    ok(run("keys", "issue", "--case", case, "--purpose", "release", *url))
    released = tmp_path / "released"
    ok(run("anonymize", str(tmp_path / "seized"), "-o", str(released), "--case", case, "--backend", "pixelate",
           "--seal-original", *url, "--user", "olga"))  # fmt: skip
    return [str(released / name) for name in originals]


def test_a_request_for_two_files_is_filed_shown_and_approved_through_the_service(
    service: RunningService,  # noqa: F811
    shares: list[str],  # noqa: F811
    tmp_path: Path,
    astronaut: np.ndarray,
) -> None:
    url = _lab(service, shares, tmp_path)
    files = _photos(tmp_path, url, "C-17", astronaut)
    out = str(tmp_path / "restored")
    ivan, ann, bob = (["--user", name] for name in ("ivan", "ann", "bob"))
    restore = ["restore", *files, "-o", out, "--case", "C-17", "--reason", "warrant 2026/114", *url, *ivan]
    results: list[Result] = []

    def keep(result: Result) -> Result:
        results.append(result)
        return result

    filed = json.loads(ok(keep(run(*restore, "--exact", "--request-only", "--json"))))
    handle = filed["handle"]
    assert filed["state"] == "pending" and filed["mode"] == "exact" and filed["requester"] == "ivan"
    assert [f["name"] for f in filed["files"]] == files and filed["approvals_required"] == 2

    listed = ok(keep(run("requests", "list", *url, *ann, "--state", "pending")))
    assert listed.startswith("REQUEST") and handle in listed and "exact" in listed and "0/2" in listed
    shown = ok(keep(run("requests", "show", handle, *url, *ann)))
    for expected in ("mode     exact", "reason   warrant 2026/114", "cam1.png", "day2/cam2.png"):
        assert expected in shown

    assert f"made request {handle} and cannot approve it" in error(
        keep(run("requests", "approve", handle, *url, *ivan)), 1
    )
    assert "1 of 2 approvals, now pending" in ok(keep(run("approve", handle, *url, *ann)))
    assert f"user ann already approved request {handle}" in error(
        keep(run("requests", "approve", handle, *url, *ann)), 1
    )
    again = json.loads(ok(keep(run("requests", "show", handle, *url, *ann, "--json"))))
    assert again["approvals_counted"] == 1 and again["state"] == "pending"

    pending = keep(run(*restore, "--exact", "--json"))  # finds the open request: exit 3, the request printed
    assert pending.exit_code == 3 and json.loads(pending.stdout)["handle"] == handle
    assert f"request {handle} awaits approval (1 of 2)" in pending.stderr

    assert "2 of 2 approvals, now approved" in ok(keep(run("requests", "approve", handle, *url, *bob)))
    assert f"under request {handle}" in ok(keep(run(*restore, "--exact")))  # the service restores them
    for name in ("cam1.png", "day2/cam2.png"):  # two files given: they land side by side in out/
        restored = read_image(Path(out) / Path(name).name)
        assert np.array_equal(restored, read_image(tmp_path / "seized" / name)), name

    entries = json.loads(ok(run("audit", "show", *url, "--case", "C-17", "--json")))
    actions = [(e["actor"], e["action"], e["outcome"]) for e in entries]
    assert ("ivan", "restore.request", "ok") in actions and ("bob", "restore.approve", "ok") in actions
    assert ("ivan", "restore.approve", "refused") in actions and (
        "ann",
        "restore.approve",
        "refused",
    ) in actions
    assert_no_secret([r.stdout + r.stderr for r in results], service.url, shares, PASSPHRASES)


def test_deny_and_cancel_through_the_service(
    service: RunningService,  # noqa: F811
    shares: list[str],  # noqa: F811
    tmp_path: Path,
    astronaut: np.ndarray,
) -> None:
    url = _lab(service, shares, tmp_path)
    files = _photos(tmp_path, url, "C-3", astronaut)
    request = [
        "restore",
        *files,
        "-o",
        str(tmp_path / "out"),
        "--case",
        "C-3",
        "--reason",
        "lead",
        "--exact",
        *url,
    ]
    first = ok(run(*request, "--user", "ivan", "--request-only")).strip()
    second = ok(run(*request, "--user", "ivan", "--request-only")).strip()

    assert "cannot deny it" in error(
        run("requests", "deny", first, *url, "--user", "ivan", "--reason", "x"), 1
    )
    assert "user ann lacks the role investigator" in error(
        run("requests", "cancel", first, *url, "--user", "ann", "--reason", "x"), 1
    )
    assert f"denied {first} (case C-3): warrant does not cover cam2" in ok(
        run("requests", "deny", first, *url, "--user", "ann", "--reason", "warrant does not cover cam2")
    )
    assert f"cancelled {second} (case C-3): filed twice" in ok(
        run("requests", "cancel", second, *url, "--user", "ivan", "--reason", "filed twice")
    )
    assert "was denied by ann: approval refused" in error(run("approve", first, *url, "--user", "bob"), 1)
    assert "with a reason" in error(
        run("requests", "cancel", second, *url, "--user", "ivan", "--reason", " "), 2
    )
    shown = json.loads(ok(run("requests", "show", second, *url, "--user", "ann", "--json")))
    assert shown["state"] == "cancelled" and shown["closed_by"] == "ivan"
    assert "unknown restore request rq_nope" in error(
        run("requests", "show", "rq_nope", *url, "--user", "ann"), 1
    )
    refused = error(run(*request, "--user", "ivan", "--request", first), 1)
    assert f"request {first} was denied by ann: restore refused" in refused
    one = [arg for arg in request if arg != files[1]]  # a request for cam1 alone, used for both files
    third = ok(run(*one, "--user", "ivan", "--request-only")).strip()
    other = error(run(*request, "--user", "ivan", "--request", third), 1)
    assert f"request {third} was filed for an exact restore of other inputs or in another mode" in other


def test_request_responses_carry_only_the_request(
    service: RunningService,  # noqa: F811
    shares: list[str],  # noqa: F811
    tmp_path: Path,
    astronaut: np.ndarray,
) -> None:
    url = _lab(service, shares, tmp_path)
    files = _photos(tmp_path, url, "C-5", astronaut)
    ok(
        run(
            "restore",
            *files,
            "-o",
            str(tmp_path / "o"),
            "--case",
            "C-5",
            "--reason",
            "r",
            *url,
            "--user",
            "ivan",
            "--exact",
            "--request-only",
        )
    )
    token = tokenfile.load(service.url, "ann")
    answer = httpx.get(f"{service.url}/v1/requests", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    (request,) = answer.json()
    assert set(request) == {
        "handle",
        "requester",
        "case_id",
        "reason",
        "input_digest",
        "key_handle",
        "state",
        "created",
        "approvals",
        "mode",
        "files",
        "approvals_required",
        "approvals_counted",
        "closed_by",
        "closed_reason",
    }
    assert_no_secret([answer.text], service.url, shares, PASSPHRASES)
