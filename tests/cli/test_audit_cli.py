"""`ifadit audit show|export|verify|prove|consistency|digest` through click's runner; tampered bundles exit 4 naming the entry."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.cli.test_admin_cli import CHEAP_KDF, Ifadit, _error, _ok
from tests.keyvault.support import vault_url  # noqa: F401  (fixture: SQLite file or PostgreSQL schema)


@pytest.fixture
def busy(vault_url: str, tmp_path: Path) -> Ifadit:  # noqa: F811
    run = Ifadit(vault_url)
    _ok(run("vault", "init", *CHEAP_KDF))
    for case in ("C-1", "C-2", "C-1"):
        handle = _ok(run("keys", "issue", "--case", case, "--purpose", "test")).strip()
    _ok(run("keys", "suspend", handle))
    _ok(run("users", "add", "audrey", "--role", "auditor", env={"IFADIT_NEW_PASSPHRASE": "audrey-pass"}))
    return run


def test_show(busy: Ifadit) -> None:
    header, *lines = _ok(busy("audit", "show")).strip().splitlines()
    assert header.split()[:3] == ["SEQ", "TIME", "(UTC)"] and header.endswith("CASE  REASON")
    assert len(lines) == 6 and "vault.init" in lines[0] and "key.suspend" in lines[4]
    assert lines[4].index("key.suspend") == header.index("ACTION")
    entries = json.loads(
        _ok(busy("audit", "show", "--case", "C-1", "--json", user="audrey", passphrase="audrey-pass"))
    )
    assert [e["action"] for e in entries] == ["key.issue", "key.issue", "key.suspend"]
    heads = _ok(busy("audit", "show", "--heads")).strip().splitlines()
    assert heads[0].split() == ["SIZE", "TIME", "(UTC)", "ROOT"] and heads[-1].split()[0] == "6"


def test_show_filters_by_actor_action_and_time(busy: Ifadit) -> None:
    def seqs(*args: str) -> list[int]:
        return [e["seq"] for e in json.loads(_ok(busy("audit", "show", "--json", *args)))]

    assert seqs("--action", "key") == [2, 3, 4, 5]
    assert seqs("--action", "key.suspend", "--action", "vault.init") == [1, 5]
    assert seqs("--case", "C-1", "--actor", "admin", "--action", "key.issue") == [2, 4]
    assert seqs("--actor", "audrey") == []
    assert seqs("--since-time", "2000-01-01", "--until", "2999-01-01") == [1, 2, 3, 4, 5, 6]
    assert seqs("--since-time", "2999-01-01T00:00:00") == []
    header_only = _ok(busy("audit", "show", "--actor", "nobody")).splitlines()
    assert len(header_only) == 1 and header_only[0].startswith("SEQ")
    assert "end time must come after" in _error(
        busy("audit", "show", "--since-time", "2026-02-01", "--until", "2026-01-01"), 2
    )
    assert "--since-time" in _error(busy("audit", "show", "--since-time", "yesterday"), 2)


def test_show_escapes_control_characters(busy: Ifadit) -> None:
    handle = _ok(busy("keys", "issue", "--case", "C-3", "--purpose", "test")).strip()
    _ok(busy("keys", "suspend", handle, "--reason", "\x1b[2Jwiped\n99  forged row"))
    rows = _ok(busy("audit", "show", "--case", "C-3")).splitlines()
    assert len(rows) == 3 and "\x1b" not in rows[-1]  # header, issue, suspend: no injected row
    assert rows[-1].endswith("\\x1b[2Jwiped\\x0a99  forged row")


def test_case_export_is_an_excerpt_that_verifies_offline(busy: Ifadit, tmp_path: Path) -> None:
    excerpt, pub = tmp_path / "c2.jsonl", tmp_path / "lab.pub"
    wrote = _ok(busy("audit", "export", "--case", "C-2", "-o", str(excerpt), "--public-key-out", str(pub)))
    assert "excerpt showing 2 entries (case C-2), the others as hashes" in wrote
    assert '"case_id":"C-1"' not in excerpt.read_text()
    summary = _ok(busy("audit", "verify", str(excerpt), "--public-key", str(pub), passphrase=None))
    assert summary.startswith("audit excerpt intact: 2 of 7 entries shown (case C-2)")
    kept = tmp_path / "kept.checkpoint"
    _ok(busy("audit", "checkpoint", "-o", str(kept)))
    _ok(busy("audit", "export", "--action", "key.issue", "--until", "2999-01-01", "-o", str(excerpt)))
    since = _ok(busy("audit", "verify", str(excerpt), "--since", str(kept), passphrase=None))
    assert "3 of 8 entries shown (action key.issue, before 2999-01-01T00:00:00Z)" in since
    assert "extends 1 kept checkpoint" in since


def test_export_and_offline_verify(busy: Ifadit, tmp_path: Path) -> None:
    bundle, pub = tmp_path / "b.jsonl", tmp_path / "lab.pub"
    assert "wrote 7 entries" in _ok(busy("audit", "export", "-o", str(bundle), "--public-key-out", str(pub)))
    summary = _ok(busy("audit", "verify", str(bundle), "--public-key", str(pub), passphrase=None))
    assert summary.startswith("audit log intact: 7 entries") and summary.count("\n") == 1
    report = json.loads(_ok(busy("audit", "verify", "--json", passphrase="admin-pass")))
    assert report["entries"] == 8  # the live check exported once more

    lines = bundle.read_bytes().splitlines(keepends=True)
    lines[3] = lines[3].replace(b'"outcome":"ok"', b'"outcome":"refused"')
    (tmp_path / "edited.jsonl").write_bytes(b"".join(lines))
    assert "entr" in _error(busy("audit", "verify", str(tmp_path / "edited.jsonl"), passphrase=None), 4)

    dropped = lines[:4] + lines[5:]
    (tmp_path / "dropped.jsonl").write_bytes(b"".join(dropped))
    assert "entry 4" in _error(busy("audit", "verify", str(tmp_path / "dropped.jsonl"), passphrase=None), 4)

    other = Ifadit(f"sqlite:///{tmp_path / 'other.sqlite3'}")
    _ok(other("vault", "init", *CHEAP_KDF))
    _ok(
        other(
            "audit",
            "export",
            "-o",
            str(tmp_path / "other.jsonl"),
            "--public-key-out",
            str(tmp_path / "o.pub"),
        )
    )
    mismatch = _error(
        busy("audit", "verify", str(bundle), "--public-key", str(tmp_path / "o.pub"), passphrase=None), 4
    )
    assert "key" in mismatch


def test_prove_and_check_proof_offline(busy: Ifadit, tmp_path: Path) -> None:
    _ok(busy("audit", "export", "-o", str(tmp_path / "b.jsonl"), "--public-key-out", str(tmp_path / "pub")))
    proof = tmp_path / "p.json"
    assert "wrote the proof of entry 3" in _ok(busy("audit", "prove", "3", "-o", str(proof)))
    checked = _ok(
        busy("audit", "verify", "--proof", str(proof), "--public-key", str(tmp_path / "pub"), passphrase=None)
    )
    assert checked.startswith("entry 3 is included")
    data = json.loads(proof.read_text())
    data["entry"] = data["entry"].replace('"outcome":"ok"', '"outcome":"failed"')
    proof.write_text(json.dumps(data))
    assert "entry 3" in _error(
        busy(
            "audit", "verify", "--proof", str(proof), "--public-key", str(tmp_path / "pub"), passphrase=None
        ),
        4,
    )
    assert "not covered" in _error(busy("audit", "prove", "999"), 1)


def test_consistency(busy: Ifadit) -> None:
    assert "extends the one of size 2" in _ok(busy("audit", "consistency", "2"))
    result = json.loads(_ok(busy("audit", "consistency", "2", "5", "--json")))
    assert (result["old"]["size"], result["new"]["size"]) == (2, 5) and result["proof"]
    assert "no signed tree head of size 77" in _error(busy("audit", "consistency", "77"), 1)


def test_digest_prints_the_vault_keyed_digest_of_files(busy: Ifadit, tmp_path: Path) -> None:
    """`audit digest`: the same file under the same vault gives the same keyed digest, for any user; audited."""
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"pretend these are the bytes of an original photo")
    first = _ok(busy("audit", "digest", str(photo))).strip()
    again = _ok(busy("audit", "digest", str(photo), user="audrey", passphrase="audrey-pass")).strip()
    assert first == again and first.startswith("hmac-sha256:") and len(first) == 12 + 64
    assert hashlib.sha256(photo.read_bytes()).hexdigest() not in first
    assert _ok(busy("audit", "digest", str(photo), str(photo))).strip() != first  # a list of two files
    entries = json.loads(_ok(busy("audit", "show", "--json")))
    assert [e["digests"] for e in entries if e["action"] == "audit.digest"][0] == {"files": first}
    assert "does not exist" in _error(busy("audit", "digest", str(tmp_path / "absent.png")), 2)
