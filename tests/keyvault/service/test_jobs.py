"""Job archives (`keyvault.service.jobs`): what goes in comes out, and nothing hostile is unpacked."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import pytest

from keyvault.service.errors import BadJobArchive
from keyvault.service.jobs import folder_files, pack, unpack


def _archive(members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> io.BytesIO:
    body = io.BytesIO()
    with zipfile.ZipFile(body, "w") as archive:
        for info, data in members:
            archive.writestr(info, data)
    body.seek(0)
    return body


def test_files_and_document_survive_the_round_trip(tmp_path: Path) -> None:
    (tmp_path / "src" / "day2").mkdir(parents=True)
    (tmp_path / "src" / "a.png").write_bytes(b"\x89PNG a")
    (tmp_path / "src" / "day2" / "b c.jpg").write_bytes(bytes(range(256)) * 100)
    body = io.BytesIO()
    pack(body, {"files": ["a.png"], "n": 1}, folder_files(tmp_path / "src"))
    body.seek(0)
    assert unpack(body, tmp_path / "dst") == {"files": ["a.png"], "n": 1}
    assert {name: path.read_bytes() for name, path in folder_files(tmp_path / "dst").items()} == {
        name: path.read_bytes() for name, path in folder_files(tmp_path / "src").items()
    }
    assert stat.S_IMODE((tmp_path / "dst").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "dst" / "a.png").stat().st_mode) == 0o600


def test_a_link_member_is_refused(tmp_path: Path) -> None:
    link = zipfile.ZipInfo("files/passwd")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with pytest.raises(BadJobArchive, match="not a regular file"):
        unpack(_archive([("job.json", b"{}"), (link, b"/etc/passwd")]), tmp_path / "dst")
    assert not (tmp_path / "dst" / "passwd").exists()


def test_a_member_named_twice_is_refused(tmp_path: Path) -> None:
    with pytest.warns(UserWarning), pytest.raises(BadJobArchive, match="appears twice"):
        unpack(_archive([("job.json", b"{}"), ("files/a", b"1"), ("files/a", b"2")]), tmp_path / "dst")


def test_more_than_the_budget_is_refused(tmp_path: Path) -> None:
    members: list[tuple[zipfile.ZipInfo | str, bytes]] = [("job.json", b"{}")]
    members += [(f"files/{n}", b"x" * 600) for n in range(2)]
    with pytest.raises(BadJobArchive, match="larger than this service accepts"):
        unpack(_archive(members), tmp_path / "dst", max_bytes=1000)


def test_a_link_among_the_outputs_is_not_followed(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "secret").symlink_to("/etc/hostname")
    with pytest.raises(BadJobArchive, match="is a link"):
        folder_files(tmp_path / "out")
