"""Fuzzing the audit-bundle parser and the command line.

A real exported bundle (a lab vault's log: users, a key, an anonymize run) is mutated byte- and line-wise:
`verify_bundle` returns a report or raises `AuditVerificationError`, and a bundle whose entries changed is
never reported intact. Random argument lists for several commands end with an exit code of the CLI
convention (0-4) and never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ifadit.media.image import write_image
from ifadit.pipeline.anonymize import AnonymizeOptions
from ifadit.pipeline.batch import anonymize_paths
from ifadit_cli.main import cli
from keyvault.verify import verify_bundle
from tests.keyvault.support import ADMIN_PASS
from tests.pipeline.support import CASE, Lab, make_lab
from tests.reliability.mutate import mutations
from tests.reliability.targets import fresh_folder, run_check

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
CLI = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _folder() -> Path:
    return fresh_folder()


def _lab_with_history() -> tuple[Lab, bytes]:
    folder = _folder()
    lab = make_lab(folder)
    image = np.full((48, 48, 3), 90, dtype=np.uint8)
    write_image(folder / "in.png", image)
    with lab.open("olga") as vault:
        anonymize_paths(
            vault, [folder / "in.png"], folder / "out.png", AnonymizeOptions(backend="blur"), key=lab.key
        )
    with lab.open("audrey") as vault:
        vault.export_audit(folder / "bundle.jsonl")
    return lab, (folder / "bundle.jsonl").read_bytes()


LAB, BUNDLE = _lab_with_history()
LINES = BUNDLE.splitlines(keepends=True)


def _entry_lines(data: bytes) -> list[bytes]:
    return [line for line in data.splitlines(keepends=True)[1:] if not line.startswith(b'{"tree_head":')]


def test_the_seed_bundle_verifies() -> None:
    report = verify_bundle(_write(BUNDLE))
    assert report.entries == len(_entry_lines(BUNDLE)) >= 8


def _write(data: bytes) -> Path:
    path = _folder() / "bundle.jsonl"
    path.write_bytes(data)
    return path


def _check(data: bytes) -> None:
    run_check("bundle", data, _folder())
    if _entry_lines(data) != _entry_lines(BUNDLE):
        from keyvault.errors import AuditVerificationError

        with pytest.raises(AuditVerificationError):
            verify_bundle(_write(data))


@FAST
@given(mutations(BUNDLE))
def test_byte_mutations_of_a_bundle_are_reported_or_refused(data: bytes) -> None:
    _check(data)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)


@FAST
@given(
    st.integers(0, len(LINES) - 1),
    st.sampled_from(["drop", "dup", "swap", "json", "field", "raw"]),
    st.data(),
)
def test_line_mutations_of_a_bundle_are_reported_or_refused(index: int, op: str, data: st.DataObject) -> None:
    lines = list(LINES)
    if op == "drop":
        del lines[index]
    elif op == "dup":
        lines.insert(index, lines[index])
    elif op == "swap":
        other = data.draw(st.integers(0, len(lines) - 1))
        lines[index], lines[other] = lines[other], lines[index]
    elif op == "json":
        lines[index] = json.dumps(data.draw(_JSON)).encode() + b"\n"
    elif op == "field":
        body = json.loads(lines[index])
        target = body.get("tree_head", body)
        target[data.draw(st.sampled_from(sorted(target) + ["extra"]))] = data.draw(_JSON)
        lines[index] = json.dumps(body, separators=(",", ":"), sort_keys=True).encode() + b"\n"
    else:
        lines[index] = data.draw(st.binary(max_size=80))
    _check(b"".join(lines))


@FAST
@given(st.binary(max_size=300))
def test_random_bytes_are_refused(data: bytes) -> None:
    _check(data)


# ---------------------------------------------------------------- the command line

_WORDS = st.sampled_from(
    [
        "--json",
        "--case",
        CASE,
        "C-99",
        "--key",
        LAB.key,
        "kh_00",
        "--reason",
        "why",
        "--exact",
        "--yes",
        "-o",
        "--output",
        "out.png",
        "in.png",
        "missing.png",
        "bundle.jsonl",
        "--public-key",
        "--backend",
        "blur",
        "nope",
        "--detector",
        "hog",
        "--max-pixels",
        "0",
        "-1",
        "99999999999999999999",
        "--seal-original",
        "--state",
        "pending",
        "--help",
        "-v",
        "",
        "--",
        "\udcff",
        "é",
        "--threshold",
        "nan",
        "1e309",
        "3",
    ]
)
_ARG_TEXT = st.text(st.characters(blacklist_characters="\x00"), max_size=6)  # argv cannot hold NUL
_COMMANDS = [
    ["audit", "verify"],
    ["audit", "show"],
    ["audit", "prove"],
    ["keys", "list"],
    ["keys", "show"],
    ["keys", "revoke"],
    ["anonymize"],
    ["restore"],
    ["requests", "list"],
    ["approve"],
    ["detect"],
    ["users", "list"],
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    write_image(folder / "in.png", np.full((40, 40, 3), 120, dtype=np.uint8))
    (folder / "bundle.jsonl").write_bytes(BUNDLE)
    return folder


@CLI
@given(
    command=st.sampled_from(_COMMANDS),
    args=st.lists(_WORDS | _ARG_TEXT, max_size=7),
    user=st.sampled_from(["admin", "olga", "ivan", "audrey"]),
)
def test_random_arguments_exit_with_a_convention_code_and_no_traceback(
    workdir: Path, command: list[str], args: list[str], user: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workdir)
    passphrase = ADMIN_PASS.decode() if user == "admin" else user
    env = {"IFADIT_VAULT": LAB.url, "IFADIT_USER": user, "IFADIT_PASSPHRASE": passphrase}
    result = CliRunner(env=env).invoke(cli, [*command, *args])
    assert result.exit_code in {0, 1, 2, 3, 4}, (command, args, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        command,
        args,
        repr(result.exception),
    )
    if "-v" not in args:
        assert "Traceback" not in result.output, (command, args, result.output)
