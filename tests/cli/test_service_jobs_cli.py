"""Anonymize and restore through a real vault service on loopback: the files travel, the keys stay (issue 25).

An operator anonymizes a seized folder with `--vault URL`: the service computes with the case key and
signs the manifests with its own key, the workstation publishes the outputs and its run index. An
investigator's exact restore waits for an approval (exit 3), then comes back bit for bit; a model
restore comes back labelled, with its report written here. The service checks a request against the
files it receives, refuses what a workstation may not choose (a model folder, an engine), and refuses
malformed, hostile or unauthenticated job archives before running anything. No output carries a
passphrase, a share or a token.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest

from ifadit.media.image import read_image, write_image
from ifadit.media.manifest import read_manifest, verify_manifest
from ifadit.pipeline.anonymize import MANIFEST_PURPOSE, AnonymizeOptions
from ifadit.pipeline.remote import job_name, restore_remote
from ifadit.pipeline.remote_anonymize import anonymize_remote
from ifadit.pipeline.restore_plan import RestoreOptions, request_files, request_key
from keyvault import PermissionDenied, verify_detached
from keyvault.service import tokenfile
from keyvault.service.api import NewRequest
from keyvault.service.client import VaultClient
from keyvault.service.errors import BadJobArchive
from tests.cli.test_audit_report_cli import _browse
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
from tests.keyvault.service.test_service import _forms, _materials
from tests.keyvault.support import vault_url  # noqa: F401  (fixture: SQLite file or PostgreSQL schema)

CASE = "C-17"
PASSPHRASES = {"admin": "admin-pass", "olga": "olga-pass", "ivan": "ivan-pass", "ann": "ann-pass"}
ROLES = {"olga": ("operator",), "ivan": ("investigator",), "ann": ("approver",)}


def _lab(service: RunningService, shares: list[str], tmp_path: Path) -> list[str]:  # noqa: F811
    """Unseal; an operator, an investigator and an approver logged in; approval required; a case key."""
    url = staff(service, shares, tmp_path, ROLES, PASSPHRASES)
    ok(run("vault", "policy", *url, "--require-approval", "yes", "--approvals", "1"))
    ok(run("keys", "issue", "--case", CASE, "--purpose", "CCTV release", *url))
    return url


def test_a_case_is_anonymized_approved_and_restored_exactly_through_the_service(
    service: RunningService,  # noqa: F811
    shares: list[str],  # noqa: F811
    tmp_path: Path,
    astronaut: np.ndarray,
) -> None:
    url = _lab(service, shares, tmp_path)
    photos = _case_folder(tmp_path, astronaut)
    released, restored = tmp_path / "released", tmp_path / "restored"
    olga, ivan = ["--user", "olga"], ["--user", "ivan"]
    results = [
        run(
            "anonymize",
            str(tmp_path / "seized"),
            "-o",
            str(released),
            "--case",
            CASE,
            "--backend",
            "pixelate",
            "--seal-original",
            "--json",
            *url,
            *olga,
        )  # fmt: skip
    ]
    report = json.loads(ok(results[-1]))
    assert report["files"] == 2 and report["failed"] == 0 and report["faces"] >= 2
    public_key = VaultClient(service.url, token=tokenfile.load(service.url, "olga")).public_key
    for name in photos:
        manifest = read_manifest(released / name)
        assert manifest is not None and manifest.key_handle == report["key_handle"]
        verify_manifest(  # signed by the service's key, the only one that can
            manifest, lambda sig, data: verify_detached(public_key, MANIFEST_PURPOSE, data, sig)
        )
        assert not np.array_equal(read_image(released / name), photos[name])
    runs = json.loads((released / "run.json").read_text())["runs"]
    assert [f["output"] for f in runs[0]["files"]] == ["cam1.png", "day2/cam2.png"]
    assert runs[0]["audit_seqs"] == report["audit_seqs"]
    assert not [p for p in released.rglob("*") if p.name.startswith(".ifadit-staging")]

    restore = ["restore", str(released), "-o", str(restored), "--case", CASE, "--reason", "warrant 2026/114"]
    results.append(run(*restore, "--exact", *url, *ivan))
    assert results[-1].exit_code == 3 and "awaits approval (0 of 1)" in results[-1].stderr
    assert not restored.exists()
    request = results[-1].stderr.split("request ")[1].split()[0]
    results.append(run("requests", "approve", request, *url, "--user", "ann"))
    results.append(run(*restore, "--exact", *url, *ivan))
    assert f"under request {request}" in ok(results[-1])
    for name, original in photos.items():
        assert np.array_equal(read_image(restored / name), original), name
        written = json.loads((restored / (name + ".restore.json")).read_text())
        assert written["output"] == str(restored / name) and written["request"] == request

    entries = json.loads(ok(run("audit", "show", *url, "--case", CASE, "--json")))
    done = [(e["actor"], e["action"], e["outcome"]) for e in entries]
    assert ("olga", "anonymize", "ok") in done and ("ivan", "restore", "ok") in done
    assert "intact" in ok(run("audit", "verify", *url))
    assert_no_secret([r.stdout + r.stderr for r in results], service.url, shares, PASSPHRASES)


def test_a_model_restore_through_the_service_comes_back_labelled(
    service: RunningService,  # noqa: F811
    shares: list[str],  # noqa: F811
    tmp_path: Path,
    astronaut: np.ndarray,
) -> None:
    url = _lab(service, shares, tmp_path)
    ok(run("vault", "policy", *url, "--require-approval", "no"))
    photo = tmp_path / "seized" / "cam1.png"
    _case_folder(tmp_path, astronaut)
    anonymized, restored = tmp_path / "cam1_anon.png", tmp_path / "cam1_restored.png"
    ok(run("anonymize", str(photo), "-o", str(anonymized), "--case", CASE, *url, "--user", "olga"))
    assert read_manifest(anonymized) is not None and not (tmp_path / "run.json").exists()
    done = ok(run("restore", str(anonymized), "-o", str(restored), "--case", CASE, "--reason", "lead", *url,
                  "--user", "ivan"))  # fmt: skip
    assert "(model)" in done and "policy: no approval" in done
    written = json.loads(Path(str(restored) + ".restore.json").read_text())
    assert written["notice"] and written["label_box"] and written["backend"] == "ifadit"
    assert read_image(restored).shape == astronaut.shape


def test_what_a_workstation_may_not_choose_is_refused_before_anything_is_sent(
    service: RunningService,  # noqa: F811
    shares: list[str],  # noqa: F811
    tmp_path: Path,
    astronaut: np.ndarray,
) -> None:
    url = _lab(service, shares, tmp_path)
    _case_folder(tmp_path, astronaut)
    base = ["anonymize", str(tmp_path / "seized"), "-o", str(tmp_path / "out"), "--case", CASE, *url]
    olga = ["--user", "olga"]
    assert "--engine: the vault service runs the job itself" in error(run(*base, "--engine", "ray", *olga), 2)
    assert "the vault service runs its own models" in error(
        run(*base, "--model-dir", str(tmp_path), *olga), 2
    )
    config = '{"x264-params": "stats=/tmp/written-by-the-service"}'
    assert "the vault service takes only these encoder options" in error(
        run(*base, "--ffmpeg-config", config, *olga), 2
    )
    assert "max_pixels must be 1..100000000 on the vault service" in error(
        run(*base, "--max-pixels", "1000000000000", *olga), 2
    )
    assert "lacks the role operator" in error(run(*base, "--user", "ivan"), 1)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "cam1.png").write_bytes(b"mine")
    assert "output already exists" in error(run(*base, *olga), 1)
    assert (tmp_path / "out" / "cam1.png").read_bytes() == b"mine"
    entries = json.loads(ok(run("audit", "show", *url, "--json")))
    assert [e["outcome"] for e in entries if e["action"] == "anonymize"] == ["refused"]  # ivan's


def test_the_service_checks_a_request_against_the_files_it_receives(
    service: RunningService,  # noqa: F811
    shares: list[str],  # noqa: F811
    tmp_path: Path,
    astronaut: np.ndarray,
) -> None:
    url = _lab(service, shares, tmp_path)
    _case_folder(tmp_path, astronaut)
    released = tmp_path / "released"
    ok(run("anonymize", str(tmp_path / "seized"), "-o", str(released), "--case", CASE, "--backend", "blur",
           "--seal-original", *url, "--user", "olga"))  # fmt: skip
    one = [str(released / "cam1.png")]
    request = ok(run("restore", *one, "-o", str(tmp_path / "r"), "--case", CASE, "--reason", "w", "--exact",
                     "--request-only", *url, "--user", "ivan")).strip()  # fmt: skip
    ok(run("requests", "approve", request, *url, "--user", "ann"))
    client = VaultClient(service.url, token=tokenfile.load(service.url, "ivan"))
    other = released / "day2" / "cam2.png"  # approved for cam1, sent cam2 under its request
    params = {
        "options": {"case": CASE, "reason": "w", "exact": True},
        "files": [job_name(0, other)],
        "request": request,
    }
    with pytest.raises(PermissionDenied, match=request):
        client.run_job("restore", params, {job_name(0, other): other}, tmp_path / "got")
    assert not (tmp_path / "got").exists()


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        ({"job.json": b"{}", "files/../escape.png": b"x"}, "refused file name"),
        ({"job.json": b"{}", "files//etc/passwd": b"x"}, "refused file name"),
        ({"job.json": b"[1]"}, "not a JSON object"),
        ({"files/a.png": b"x"}, "no job.json"),
        ({"job.json": b"{}", "other/a.png": b"x"}, "unexpected member"),
    ],
)
def test_hostile_job_archives_are_refused(
    service: RunningService,  # noqa: F811
    shares: list[str],  # noqa: F811
    tmp_path: Path,
    members: dict[str, bytes],
    expected: str,
) -> None:
    _lab(service, shares, tmp_path)
    body = io.BytesIO()
    with zipfile.ZipFile(body, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    token = tokenfile.load(service.url, "olga")
    answer = httpx.post(
        f"{service.url}/v1/jobs/anonymize",
        content=body.getvalue(),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 400
    assert (
        answer.json()["error"]["type"] == BadJobArchive.__name__
        and expected in answer.json()["error"]["message"]
    )


def test_jobs_refuse_strangers_unknown_kinds_and_garbage(
    service: RunningService,  # noqa: F811
    shares: list[str],  # noqa: F811
    tmp_path: Path,
) -> None:
    _lab(service, shares, tmp_path)
    token = tokenfile.load(service.url, "olga")
    auth = {"Authorization": f"Bearer {token}"}
    assert httpx.post(f"{service.url}/v1/jobs/anonymize", content=b"PK").status_code == 401
    unknown = httpx.post(f"{service.url}/v1/jobs/mine", content=b"x", headers=auth)
    assert unknown.status_code == 404 and "runs no 'mine' job" in unknown.json()["error"]["message"]
    garbage = httpx.post(f"{service.url}/v1/jobs/anonymize", content=b"not a zip", headers=auth)
    assert garbage.status_code == 400 and "not a readable ZIP" in garbage.json()["error"]["message"]

    def chunks() -> object:
        yield b"PK"

    chunked = httpx.post(f"{service.url}/v1/jobs/anonymize", content=chunks(), headers=auth)  # type: ignore[arg-type]
    assert chunked.status_code == 411


def test_job_answers_carry_no_secret_of_the_vault(
    service: RunningService,  # noqa: F811
    shares: list[str],  # noqa: F811
    tmp_path: Path,
    astronaut: np.ndarray,
) -> None:
    """Everything the workstation receives while anonymizing (iFADIT, sealed originals) and restoring."""
    _lab(service, shares, tmp_path)
    received: list[bytes] = []

    def keep(response: httpx.Response) -> None:
        response.read()
        received.append(response.content + str(response.headers).encode())

    write_image(tmp_path / "photo.png", astronaut)
    client = VaultClient(service.url, token=tokenfile.load(service.url, "olga"))
    client._http.event_hooks["response"] = [keep]
    options = AnonymizeOptions(backend="ifadit", seal_original=True)
    anonymize_remote(client, [tmp_path / "photo.png"], tmp_path / "anon.png", options, case=CASE)
    ivan = VaultClient(service.url, token=tokenfile.load(service.url, "ivan"))
    ivan._http.event_hooks["response"] = [keep]
    restore = RestoreOptions(case=CASE, reason="scan", exact=True)
    files = request_files([tmp_path / "anon.png"], tmp_path / "back.png", restore)
    request = ivan.file_request(
        NewRequest(
            case=CASE, reason="scan", files=tuple(files), mode="exact", key=request_key(files, restore)
        )
    )
    VaultClient(service.url, token=tokenfile.load(service.url, "ann")).approve_request(request.handle)
    report = restore_remote(
        ivan, [tmp_path / "anon.png"], tmp_path / "back.png", restore, request=request.handle
    )
    assert report.faces_restored == 1 and np.array_equal(read_image(tmp_path / "back.png"), astronaut)
    kek = service.state.kek()
    with service.state.vault_for("admin") as vault:
        secrets = [kek, vault._signing_key.reveal(), *(p.encode() for p in PASSPHRASES.values())]
    secrets += _materials(service.state.url, service.state.vault_id, kek, "CCTV release")
    secrets += [share.encode() for share in shares]
    everything = b"\n".join(received)
    assert len(received) >= 3 and len(secrets) >= 8
    for secret in secrets:
        for form in _forms(secret):
            assert form not in everything


def test_a_case_excerpt_and_its_report_through_the_service(
    service: RunningService,  # noqa: F811
    shares: list[str],  # noqa: F811
    tmp_path: Path,
    chromium: str,
) -> None:
    url = _lab(service, shares, tmp_path)
    ok(run("keys", "issue", "--case", "C-99", "--purpose", "another case", *url))
    excerpt, key = tmp_path / "C-17.audit.jsonl", tmp_path / "lab.pub"
    exported = ok(run("audit", "export", "--case", CASE, "-o", str(excerpt), "--public-key-out", str(key), *url,
                      "--user", "admin"))  # fmt: skip
    assert exported.startswith("wrote an excerpt showing 2 entries (case C-17)")  # the key, the export
    assert "C-99" not in excerpt.read_text()
    assert "intact" in ok(run("audit", "verify", str(excerpt), "--public-key", str(key)))
    page = tmp_path / "C-17.html"
    wrote = ok(run("audit", "report", "--case", CASE, "-o", str(page), *url, "--user", "admin"))
    assert f"wrote the report of case {CASE}" in wrote and "log verified" in wrote
    _, text = _browse(chromium, page, tmp_path / "C-17.png")
    assert f"Case {CASE}" in text and "admin issued key kh_" in text and "C-99" not in text


def test_a_revoked_key_is_refused_before_its_pending_request_is_awaited(
    service: RunningService,  # noqa: F811
    shares: list[str],  # noqa: F811
    tmp_path: Path,
    astronaut: np.ndarray,
) -> None:
    url = _lab(service, shares, tmp_path)
    write_image(tmp_path / "photo.png", astronaut)
    ok(run("anonymize", str(tmp_path / "photo.png"), "-o", str(tmp_path / "sealed.png"), "--case", CASE,
           "--backend", "pixelate", "--seal-original", *url, "--user", "olga"))  # fmt: skip
    restore = ["restore", str(tmp_path / "sealed.png"), "-o", str(tmp_path / "back.png"), "--case", CASE,
               "--reason", "w", "--exact", *url, "--user", "ivan"]  # fmt: skip
    assert run(*restore).exit_code == 3  # a request is filed and waits
    key = json.loads(ok(run("keys", "list", "--json", *url)))[0]["handle"]
    ok(run("keys", "revoke", key, "--reason", "case closed", "--yes", *url))
    assert f"key {key} is revoked: restore refused" in error(run(*restore), 1)  # not "awaits approval"
    assert not (tmp_path / "back.png").exists()


def test_a_replacement_picture_travels_with_the_job(
    service: RunningService,  # noqa: F811
    shares: list[str],  # noqa: F811
    tmp_path: Path,
    astronaut: np.ndarray,
) -> None:
    url = _lab(service, shares, tmp_path)
    write_image(tmp_path / "photo.png", astronaut)
    write_image(tmp_path / "sticker.png", np.full((40, 40, 3), (0, 200, 0), dtype=np.uint8))
    ok(run("anonymize", str(tmp_path / "photo.png"), "-o", str(tmp_path / "out.png"), "--replacewith", "img",
           "--replaceimg", str(tmp_path / "sticker.png"), *url, "--user", "olga"))  # fmt: skip
    out = read_image(tmp_path / "out.png")
    changed = np.any(out != astronaut, axis=2)
    assert changed.any() and np.median(out[changed][:, 1]) > 150  # the green sticker covers the face
