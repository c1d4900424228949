"""The Ray engine (real Ray, 2 CPUs) against the serial engine on real photos, and where the key material goes.

In the default run: ray[data] is in the `dev` extra. One Ray start (~7 s on 2 loaded cores) serves the module
and is shut down after it; the three tests take ~34 s together (each Ray batch starts an actor pool, ~4 s).
Without Ray installed the module skips with the install hint.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ifadit.media.image import read_image, write_image
from ifadit.media.manifest import Manifest, read_manifest
from ifadit.pipeline.anonymize import AnonymizeOptions
from ifadit.pipeline.batch import RunReport, anonymize_paths
from ifadit.pipeline.outputs import keyed_list_digest
from ifadit.pipeline.ray_engine import RayEngine
from keyvault import keys
from tests.pipeline.support import CASE, Lab, audit_entries, make_lab

ray = pytest.importorskip(
    "ray",
    reason="the Ray engine tests need ray[data]==2.52.1, in the dev and ray extras (pip install -e '.[dev]')",
)

DEEPFACE = ["person01/img28.jpg", "person02/img47.jpg", "person03/img53.jpg"]


@pytest.fixture(scope="module")
def ray_session() -> Iterator[Path]:
    """A fresh local Ray for this module (2 CPUs, no dashboard, never a cluster named by RAY_ADDRESS).

    Always shut down, also when a test or the start fails, so no raylet or worker outlives the module.
    Yields the session folder.
    """
    if ray.is_initialized():
        ray.shutdown()
    try:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        yield Path(ray._private.worker._global_node.get_session_dir_path())
    finally:
        ray.shutdown()


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return make_lab(tmp_path)


@pytest.fixture
def photos(tmp_path: Path, astronaut: np.ndarray, shared_dir: Path) -> Path:
    """The astronaut (PNG), three deepface photos (JPEG as shipped, one folder down) and a broken file."""
    folder = tmp_path / "photos"
    folder.mkdir()
    write_image(folder / "astronaut.png", astronaut)
    for name in DEEPFACE:
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_bytes((shared_dir / "data" / "reid" / "deepface" / name).read_bytes())
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return folder


def _run(
    lab: Lab, photos: Path, out: Path, engine: RayEngine | None, backend: str = "blur", **kwargs: object
) -> RunReport:
    options = AnonymizeOptions(backend=backend, seal_original=True)
    with lab.open("olga") as vault:
        return anonymize_paths(vault, [photos], out, options, case=CASE, engine=engine, **kwargs)  # type: ignore[arg-type]


def _comparable(manifest: Manifest | None) -> Manifest:
    """The manifest minus its run-specific fields (audit seq, manifest id, signature, the sealed payloads' random
    bytes)."""
    assert manifest is not None and manifest.signature and manifest.manifest_id
    faces = tuple(replace(face, sealed=None) for face in manifest.faces)
    assert all(face.sealed is not None for face in manifest.faces)
    return replace(manifest, audit_seq=None, manifest_id=None, signature=None, faces=faces)


def test_ray_outputs_match_the_serial_engine(
    ray_session: Path, lab: Lab, photos: Path, tmp_path: Path
) -> None:
    serial = _run(lab, photos, tmp_path / "serial", None)
    parallel = _run(lab, photos, tmp_path / "ray", RayEngine(workers=2))

    assert [item.as_dict()["input"] for item in parallel.items] == [
        item.as_dict()["input"] for item in serial.items
    ]
    assert [item.source.name for item in parallel.failed] == [
        "broken.png"
    ]  # a bad input is skipped, as serially
    assert "broken.png" in (parallel.failed[0].error or "") and parallel.exit_code == serial.exit_code == 1
    names = ["astronaut.png", *DEEPFACE]
    for name in names:
        ours, theirs = tmp_path / "ray" / name, tmp_path / "serial" / name
        assert np.array_equal(read_image(ours), read_image(theirs)), name
        assert _comparable(read_manifest(ours)) == _comparable(read_manifest(theirs)), name
    assert sum(item.faces for item in parallel.items) == sum(item.faces for item in serial.items) >= 4
    published = {
        kind: sorted(p.relative_to(tmp_path / kind).as_posix() for p in (tmp_path / kind).rglob("*"))
        for kind in ("ray", "serial")
    }
    assert published["ray"] == published["serial"]  # same files and sidecars; no staging folder, no journal
    assert not any(name.startswith(".") for name in published["ray"]) and set(names) <= set(published["ray"])

    first, second = audit_entries(lab, "anonymize")  # one entry per job, with the list digests
    assert second.seq == parallel.audit_seq and first.seq == serial.audit_seq
    done = [item for item in parallel.items if item.error is None]
    with lab.open("admin") as vault:
        assert second.digests["inputs"] == keyed_list_digest(
            vault, (item.input_sha256 or "" for item in done)
        )
    assert second.digests["inputs"] == first.digests["inputs"]
    assert second.details["files"] == 4 and second.details["failed"] == 1


def test_key_material_never_reaches_ray_storage_or_logs(
    ray_session: Path, lab: Lab, photos: Path, tmp_path: Path
) -> None:
    _run(lab, photos, tmp_path / "ray", RayEngine(workers=2))
    with lab.open("olga") as vault:
        material = keys.unseal_for_use(vault, lab.key, purpose="anonymize").material
    forms = {
        "raw": material,
        "hex": material.hex().encode(),
        "HEX": material.hex().upper().encode(),
        "base64": base64.b64encode(material),
        "urlsafe base64": base64.urlsafe_b64encode(material).rstrip(b"="),
    }
    scanned = 0
    for path in ray_session.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            scanned += 1
            for form, needle in forms.items():
                assert needle not in data, f"key material ({form}) found in {path}"
    assert scanned > 10  # the logs and session files really were read
    assert any(p.suffix in {".log", ".out", ".err"} for p in ray_session.rglob("*"))


def test_ray_job_resumes_without_repeating_entries(
    ray_session: Path, lab: Lab, photos: Path, tmp_path: Path
) -> None:
    # every batch starts an actor pool (~4 s here), so batches of 3: two batches, then one on the rerun
    first = _run(lab, photos, tmp_path / "out", RayEngine(workers=2), checkpoint=3)
    assert len(first.audit_seqs) == 2  # 5 items in batches of 3; broken.png (2nd in plan order) fails
    again = _run(lab, photos, tmp_path / "out", RayEngine(workers=2), checkpoint=3)
    assert sum(item.resumed for item in again.items) == 4
    assert again.audit_seqs == ()  # only the broken file was tried again: a batch that produced nothing
    entries = audit_entries(lab, "anonymize")
    assert [entry.details["files"] for entry in entries] == [2, 2, 0]
    assert [entry.outcome for entry in entries] == ["ok", "ok", "failed"]  # ... is audited as failed
    journal = json.loads((tmp_path / "out" / ".ifadit-journal.json").read_text())
    assert len(journal["outputs"]) == 4


def _shipped_ifadit() -> None:
    from ifadit.backends.ifadit import is_shipped

    if not is_shipped():
        pytest.skip("pretrained/ifadit-64 is not in this checkout")


class _AnonymizeInActor:
    """A Ray actor (one CPU: Ray gives it one torch thread) running the shipped iFADIT backend."""

    def run(self, crops: np.ndarray, key: bytes) -> np.ndarray:
        from ifadit.backends.ifadit import IfaditBackend

        return IfaditBackend().anonymize_crops(crops, key)


def test_ifadit_surrogates_in_a_ray_actor_are_the_drivers_bit_for_bit(
    ray_session: Path, shared_dir: Path
) -> None:
    """32 dlib-johns chips: in one batch in a Ray actor (1 thread), and one by one here on two threads."""
    torch = pytest.importorskip("torch")
    from ifadit.backends.ifadit import IfaditBackend

    _shipped_ifadit()
    chips = np.stack(
        [read_image(p) for p in sorted((shared_dir / "data/reid/dlib-johns").rglob("*.jpg"))[:32]]
    )
    key = bytes(range(32))
    actor = ray.remote(num_cpus=1)(_AnonymizeInActor).remote()
    in_actor = ray.get(actor.run.remote(chips, key))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        backend = IfaditBackend()
        here = np.concatenate([backend.anonymize_crops(chip[None], key) for chip in chips])
    finally:
        torch.set_num_threads(before)
    ray.kill(actor)
    assert np.array_equal(in_actor, here)


def test_ifadit_photos_from_ray_are_the_serial_engines_bit_for_bit(
    ray_session: Path, lab: Lab, photos: Path, tmp_path: Path
) -> None:
    """The shipped model on real photos: the serial engine on two threads, Ray actors on one."""
    torch = pytest.importorskip("torch")
    _shipped_ifadit()
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        serial = _run(lab, photos, tmp_path / "serial", None, backend="ifadit")
    finally:
        torch.set_num_threads(before)
    parallel = _run(lab, photos, tmp_path / "ray", RayEngine(workers=2), backend="ifadit")
    assert sum(item.faces for item in parallel.items) == sum(item.faces for item in serial.items) >= 4
    for name in ["astronaut.png", *DEEPFACE]:
        assert np.array_equal(read_image(tmp_path / "ray" / name), read_image(tmp_path / "serial" / name)), (
            name
        )
