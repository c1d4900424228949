"""`ifadit restore|approve|requests` through click's runner: approvals, refusals, tampering, audit verification."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ifadit.media.image import read_image, write_image
from ifadit.media.manifest import embedding_for, read_manifest
from ifadit.media.video import probe_video, read_frames
from tests.media.test_video import _with_audio
from tests.pipeline.support import CASE, Lab, audit_entries, keyed_backend, make_lab  # noqa: F401
from tests.video_scenes import Sprite, deepface_patch, linear_path, render

RESTORE = ("--case", CASE, "--reason", "court order 7")


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return make_lab(tmp_path)  # default policy: restores need an approval


@pytest.fixture
def anonymized(lab: Lab, tmp_path: Path, astronaut: np.ndarray) -> Path:
    write_image(tmp_path / "astronaut.png", astronaut)
    done = lab.cli(
        "anonymize", tmp_path / "astronaut.png", "-o", tmp_path / "out.png", "--case", CASE, "--seal-original"
    )
    assert done.exit_code == 0, done.stderr
    return tmp_path / "out.png"


def _pending_request(stderr: str) -> str:
    match = re.search(r"request (rq_[0-9a-f]+) awaits approval", stderr)
    assert match, stderr
    return match.group(1)


def test_approval_flow(lab: Lab, anonymized: Path, tmp_path: Path, astronaut: np.ndarray) -> None:
    target = tmp_path / "restored.png"
    pending = lab.cli("restore", anonymized, "-o", target, *RESTORE, "--exact", user="ivan")
    assert pending.exit_code == 3 and pending.stdout == "" and not target.exists()
    request = _pending_request(pending.stderr)
    assert f"ifadit requests approve {request}" in pending.stderr

    listed = lab.cli("requests", "list", "--state", "pending", user="alice")
    assert listed.exit_code == 0 and request in listed.stdout and "ivan" in listed.stdout
    assert listed.stdout.splitlines()[0].split() == [
        "REQUEST",
        "STATE",
        "MODE",
        "FILES",
        "APPROVALS",
        "CASE",
        "REQUESTER",
        "FILED",
        "(UTC)",
        "REASON",
    ]
    assert lab.cli("approve", request, user="ivan").exit_code == 1  # the requester lacks the approver role
    approved = lab.cli("approve", request, user="alice")
    assert approved.exit_code == 0 and f"approved {request}" in approved.stdout

    done = lab.cli("restore", anonymized, "-o", target, *RESTORE, "--exact", "--json", user="ivan")
    assert done.exit_code == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["request"] == request and report["approvals"][0]["approver"] == "alice"
    assert np.array_equal(read_image(target), astronaut)
    shown = json.loads(lab.cli("requests", "show", request, "--json", user="audrey").stdout)
    assert shown["state"] == "used" and shown["approvals"][0]["used"] is not None

    again = lab.cli("restore", anonymized, "-o", tmp_path / "again.png", *RESTORE, "--exact", user="ivan")
    assert again.exit_code == 3 and _pending_request(again.stderr) != request  # single use: a new request
    assert not (tmp_path / "again.png").exists()


def test_self_approval_is_refused(lab: Lab, anonymized: Path, tmp_path: Path) -> None:
    with lab.open("admin") as vault:
        from keyvault import access

        access.add_user(vault, "sam", ["investigator", "approver"], b"sam")
    filed = lab.cli(
        "restore", anonymized, "-o", tmp_path / "r.png", *RESTORE, "--exact", "--request-only", user="sam"
    )
    assert filed.exit_code == 0 and filed.stdout.strip().startswith("rq_")
    request = filed.stdout.strip()
    own = lab.cli("approve", request, user="sam")
    assert own.exit_code == 1 and f"made request {request} and cannot approve it" in own.stderr
    assert audit_entries(lab, "restore.approve")[-1].outcome == "refused"


@pytest.mark.parametrize(
    "field", ["backend", "key_version", "audit_seq", "pixels_sha256", "faces", "signature"]
)
def test_tampered_manifest_exits_4(lab: Lab, anonymized: Path, tmp_path: Path, field: str) -> None:
    manifest = read_manifest(anonymized)
    assert manifest is not None
    changes = {
        "backend": "mask",
        "key_version": 7,
        "audit_seq": 1,
        "pixels_sha256": "f" * 64,
        "faces": (replace(manifest.faces[0], box=(0, 0, 9, 9)),),
        "signature": manifest.signature[::-1] if manifest.signature else None,
    }
    edited = replace(manifest, **{field: changes[field]})
    write_image(anonymized, read_image(anonymized), **embedding_for(anonymized, edited))
    refused = lab.cli("restore", anonymized, "-o", tmp_path / "r.png", *RESTORE, "--exact", user="ivan")
    assert refused.exit_code == 4, refused.stderr
    assert "manifest signature" in refused.stderr and not (tmp_path / "r.png").exists()
    assert audit_entries(lab, "restore")[-1].outcome == "failed"


@pytest.mark.parametrize(
    ("verbs", "state"),
    [(["suspend"], "suspended"), (["revoke"], "revoked"), (["revoke", "destroy"], "pending-destroy")],
)
def test_key_states_are_named(
    lab: Lab, anonymized: Path, tmp_path: Path, verbs: list[str], state: str
) -> None:
    lab.require_approval(False)
    for verb in verbs:
        changed = lab.cli(
            "keys", verb, lab.key, "--reason", "test", *(["--yes"] if verb != "suspend" else []), user="admin"
        )
        assert changed.exit_code == 0, changed.stderr
    refused = lab.cli("restore", anonymized, "-o", tmp_path / "r.png", *RESTORE, "--exact", user="ivan")
    assert refused.exit_code == 1
    assert (
        f"key {lab.key} is {state}: restore refused" in refused.stderr and not (tmp_path / "r.png").exists()
    )


def test_wrong_role_is_refused_and_audited(lab: Lab, anonymized: Path, tmp_path: Path) -> None:
    refused = lab.cli("restore", anonymized, "-o", tmp_path / "r.png", *RESTORE, "--exact", user="olga")
    assert refused.exit_code == 1 and "lacks the role investigator" in refused.stderr
    shown = json.loads(lab.cli("audit", "show", "--json", user="audrey").stdout)
    assert [(e["action"], e["actor"], e["outcome"]) for e in shown][-1] == ("restore", "olga", "refused")


def test_non_reversible_output_says_nothing_can_be_restored(
    lab: Lab, tmp_path: Path, astronaut: np.ndarray
) -> None:
    write_image(tmp_path / "in.png", astronaut)
    blurred = lab.cli(
        "anonymize", tmp_path / "in.png", "-o", tmp_path / "blurred.png", "--case", CASE, "--backend", "blur"
    )
    assert blurred.exit_code == 0
    refused = lab.cli("restore", tmp_path / "blurred.png", "-o", tmp_path / "r.png", *RESTORE, user="ivan")
    assert refused.exit_code == 1
    assert "nothing can be restored" in refused.stderr and "'blur' is not reversible" in refused.stderr


def test_reversible_backend_and_copy_without_manifest(
    lab: Lab,
    tmp_path: Path,
    astronaut: np.ndarray,
    keyed_backend: str,  # noqa: F811
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
    write_image(tmp_path / "copy.png", read_image(tmp_path / "out.png"))  # re-shared: manifest lost
    missing = lab.cli("restore", tmp_path / "copy.png", "-o", tmp_path / "r.png", *RESTORE, user="ivan")
    assert missing.exit_code == 1 and "carries no manifest" in missing.stderr and "--key" in missing.stderr
    restored = lab.cli(
        "restore",
        tmp_path / "copy.png",
        "-o",
        tmp_path / "r.png",
        *RESTORE,
        "--key",
        lab.key,
        "--backend",
        keyed_backend,
        user="ivan",
    )
    assert restored.exit_code == 0, restored.stderr
    core = (slice(100, 150), slice(195, 245))
    error = np.abs(read_image(tmp_path / "r.png")[core].astype(float) - astronaut[core]).mean()
    assert error < 7


def test_audit_chain_verifies_after_a_full_story(lab: Lab, anonymized: Path, tmp_path: Path) -> None:
    pending = lab.cli("restore", anonymized, "-o", tmp_path / "r.png", *RESTORE, "--exact", user="ivan")
    assert lab.cli("approve", _pending_request(pending.stderr), user="alice").exit_code == 0
    assert (
        lab.cli("restore", anonymized, "-o", tmp_path / "r.png", *RESTORE, "--exact", user="ivan").exit_code
        == 0
    )
    assert lab.cli("restore", anonymized, "-o", tmp_path / "r.png", *RESTORE, user="olga").exit_code == 1
    exported = lab.cli(
        "audit",
        "export",
        "-o",
        tmp_path / "audit.jsonl",
        "--public-key-out",
        tmp_path / "audit.pub",
        user="audrey",
    )
    assert exported.exit_code == 0, exported.stderr
    verified = lab.cli(
        "audit",
        "verify",
        tmp_path / "audit.jsonl",
        "--public-key",
        tmp_path / "audit.pub",
        "--json",
        user="audrey",
    )
    assert verified.exit_code == 0, verified.stderr
    actions = [json.loads(line).get("action") for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert {"anonymize", "restore.request", "restore.approve", "restore"} <= set(actions)


def test_video_with_audio_round_trip_through_the_cli(lab: Lab, tmp_path: Path, shared_dir: Path) -> None:
    lab.require_approval(False)
    sprites = [Sprite(deepface_patch(shared_dir, "person01/img28.jpg"), linear_path((20, 30), (150, 80), 8))]
    clip = _with_audio(tmp_path / "clip.mp4", render(sprites, 8))
    original = list(read_frames(clip))
    done = lab.cli(
        "anonymize",
        clip,
        "-o",
        tmp_path / "out",
        "--case",
        CASE,
        "--lossless",
        "--seal-original",
        "--keep-audio",
        "--json",
    )
    assert done.exit_code == 0, done.stderr
    anonymized = tmp_path / "out" / "clip.mkv"
    assert json.loads(done.stdout)["faces"] == 8 and (tmp_path / "out" / "clip.mkv.ifadit.json").is_file()
    assert probe_video(anonymized).has_audio
    restored = lab.cli(
        "restore", anonymized, "-o", tmp_path / "restored.mkv", *RESTORE, "--exact", user="ivan"
    )
    assert restored.exit_code == 0, restored.stderr
    frames = list(read_frames(tmp_path / "restored.mkv"))
    assert len(frames) == 8 and all(np.array_equal(a, b) for a, b in zip(frames, original, strict=True))

    # Lossy H.264 output: its manifest digests the decoded frames, so the manifest checks pass and the
    # restore stops only because blur cannot be undone.
    assert (
        lab.cli("anonymize", clip, "-o", tmp_path / "lossy", "--case", CASE, "--backend", "blur").exit_code
        == 0
    )
    refused = lab.cli(
        "restore", tmp_path / "lossy" / "clip.mp4", "-o", tmp_path / "r.mp4", *RESTORE, user="ivan"
    )
    assert refused.exit_code == 1 and "nothing can be restored" in refused.stderr
    unsealable = lab.cli("anonymize", clip, "-o", tmp_path / "x", "--case", CASE, "--seal-original")
    assert unsealable.exit_code == 1 and "--seal-original on a video needs --lossless" in unsealable.stderr
