"""ifadit.pipeline.anonymize on real photos with a real SQLite vault: outputs, manifests, audit, failures."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ifadit.backends import base
from ifadit.faces.blend import REVERSIBLE_MASK_SCALE
from ifadit.faces.registry import get_detector
from ifadit.media.digests import file_sha256, list_digest
from ifadit.media.image import read_image, write_image
from ifadit.media.manifest import read_manifest, verify_manifest
from ifadit.pipeline.anonymize import MANIFEST_PURPOSE, AnonymizeOptions, mask_scale_for
from ifadit.pipeline.batch import anonymize_paths
from ifadit.pipeline.outputs import keyed_files_digest
from keyvault import keys
from keyvault.errors import KeyStateError, PermissionDenied
from keyvault.vault import verify_detached
from tests.pipeline.support import CASE, Lab, audit_entries, keyed_backend, make_lab  # noqa: F401


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return make_lab(tmp_path)


@pytest.fixture
def photos(tmp_path: Path, astronaut: np.ndarray, shared_dir: Path) -> Path:
    """A folder with the astronaut (PNG) and, one level down, a deepface photo (JPEG as shipped)."""
    folder = tmp_path / "photos"
    (folder / "person01").mkdir(parents=True)
    write_image(folder / "astronaut.png", astronaut)
    source = shared_dir / "data" / "reid" / "deepface" / "person01" / "img28.jpg"
    (folder / "person01" / "img28.jpg").write_bytes(source.read_bytes())
    return folder


def _run(lab: Lab, inputs: list[Path], output: Path, force: bool = False, **options: object):
    with lab.open("olga") as vault:
        return anonymize_paths(vault, inputs, output, AnonymizeOptions(**options), case=CASE, force=force)  # type: ignore[arg-type]


def _changed(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    return (before != after).any(axis=2)


@pytest.mark.parametrize("backend", ["blur", "pixelate", "mask"])
def test_faces_replaced_only_inside_their_mask(
    lab: Lab, tmp_path: Path, astronaut: np.ndarray, backend: str
) -> None:
    write_image(tmp_path / "in.png", astronaut)
    report = _run(lab, [tmp_path / "in.png"], tmp_path / "out", backend=backend)
    out = read_image(tmp_path / "out" / "in.png")
    changed = _changed(astronaut, out)
    x0, y0, x1, y1 = (int(v) for v in get_detector("hog").detect(astronaut)[0].box)
    assert changed[y0:y1, x0:x1].mean() > 0.5  # the face itself is replaced
    ys, xs = np.nonzero(changed)
    assert ys.min() > y0 - 60 and ys.max() < y1 + 60 and xs.min() > x0 - 60 and xs.max() < x1 + 60
    assert report.exit_code == 0 and report.items[0].faces == 1 and report.backend == backend


def test_a_reversible_backend_covers_more_of_the_face_by_default(
    lab: Lab,
    tmp_path: Path,
    astronaut: np.ndarray,
    keyed_backend: str,  # noqa: F811
) -> None:
    """Restore reads the surrogate back from the pasted pixels, so a reversible backend's default ellipse is
    `REVERSIBLE_MASK_SCALE`, not the 1.0 of the one-way baselines (which leaves the original's outer face)."""
    write_image(tmp_path / "in.png", astronaut)
    areas = {}
    for name, scale in (("default", None), ("explicit", REVERSIBLE_MASK_SCALE), ("plain", 1.0)):
        report = _run(lab, [tmp_path / "in.png"], tmp_path / name, backend=keyed_backend, mask_scale=scale)
        assert report.exit_code == 0
        areas[name] = int(_changed(astronaut, read_image(tmp_path / name / "in.png")).sum())
        manifest = read_manifest(tmp_path / name / "in.png")
        assert manifest is not None and manifest.mask_scale == (scale or REVERSIBLE_MASK_SCALE)
    assert areas["default"] == areas["explicit"] > 1.3 * areas["plain"]
    assert mask_scale_for(base.get_backend("blur")) == 1.0


def test_manifest_is_signed_names_key_not_case(lab: Lab, tmp_path: Path, astronaut: np.ndarray) -> None:
    write_image(tmp_path / "in.png", astronaut)
    report = _run(lab, [tmp_path / "in.png"], tmp_path / "out.png")
    manifest = read_manifest(tmp_path / "out.png")
    assert manifest is not None
    with lab.open("olga") as vault:
        verify_manifest(
            manifest, lambda sig, data: verify_detached(vault.public_key, MANIFEST_PURPOSE, data, sig)
        )
        assert manifest.vault_id == vault.id
    assert manifest.key_handle == lab.key and manifest.key_version == 1
    assert manifest.audit_seq == report.audit_seq and manifest.backend == "blur"
    assert manifest.faces[0].box[0] < manifest.faces[0].box[2] and manifest.faces[0].sealed is None
    assert CASE.encode() not in (tmp_path / "out.png").read_bytes()


def test_same_input_and_key_give_identical_pixels(lab: Lab, tmp_path: Path, astronaut: np.ndarray) -> None:
    write_image(tmp_path / "in.png", astronaut)
    _run(lab, [tmp_path / "in.png"], tmp_path / "a", seal_original=True)
    _run(lab, [tmp_path / "in.png"], tmp_path / "b", seal_original=True)
    assert np.array_equal(read_image(tmp_path / "a" / "in.png"), read_image(tmp_path / "b" / "in.png"))
    first, second = read_manifest(tmp_path / "a" / "in.png"), read_manifest(tmp_path / "b" / "in.png")
    assert first is not None and second is not None
    assert first.audit_seq != second.audit_seq  # run-specific, documented
    assert first.manifest_id != second.manifest_id  # drawn per output, bound into its sealed regions
    assert first.faces[0].sealed != second.faces[0].sealed  # fresh data key and nonces per run
    run_specific = {"audit_seq": None, "manifest_id": None, "faces": ()}
    assert replace(first, **run_specific) == replace(second, **run_specific)
    assert first.faces[0].box == second.faces[0].box


def test_folder_is_recursive_and_a_bad_file_is_skipped(lab: Lab, tmp_path: Path, photos: Path) -> None:
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    report = _run(lab, [photos], tmp_path / "out")
    outputs = sorted(
        p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*") if p.is_file()
    )
    assert outputs == ["astronaut.png", "person01/img28.jpg", "run.json"]
    assert [item.source.name for item in report.failed] == ["broken.png"]
    assert "broken.png" in (report.failed[0].error or "") and report.exit_code == 1
    assert read_manifest(tmp_path / "out" / "person01" / "img28.jpg") is not None  # JPEG APP11
    [entry] = audit_entries(lab, "anonymize")
    done = [item for item in report.items if item.error is None]
    assert entry.outcome == "ok" and entry.seq == report.audit_seq
    assert entry.details["files"] == 2 and entry.details["failed"] == 1 and entry.details["faces"] >= 2
    with lab.open("admin") as vault:  # inputs keyed by the vault (a bundle reader cannot confirm them)
        inputs = keyed_files_digest(vault, [item.source for item in done])
    assert inputs.startswith("hmac-sha256:")
    assert entry.digests == {
        "inputs": inputs,
        "outputs": list_digest(file_sha256(item.target) for item in done),
    }
    assert entry.key_handle == lab.key and entry.key_version == 1 and entry.case_id == CASE


def test_exif_and_gps_are_dropped(lab: Lab, tmp_path: Path, astronaut: np.ndarray) -> None:
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"  # Make
    exif[0x8825] = {2: (48.0, 51.0, 30.0)}  # GPS IFD: latitude
    buffer = io.BytesIO()
    Image.fromarray(astronaut).save(buffer, "JPEG", exif=exif.tobytes())
    (tmp_path / "in.jpg").write_bytes(buffer.getvalue())
    _run(lab, [tmp_path / "in.jpg"], tmp_path / "out")
    with Image.open(tmp_path / "out" / "in.jpg") as img:
        assert not img.getexif() and "exif" not in img.info
    assert b"CameraMaker" not in (tmp_path / "out" / "in.jpg").read_bytes()


class ExplodingBackend:
    """Blur that raises on its second batch (a crash in the middle of a run)."""

    name, reversible, crop_size, colour_match = "exploding", False, 64, False
    calls = 0

    def anonymize_crops(self, crops: np.ndarray, key: bytes | None) -> np.ndarray:
        type(self).calls += 1
        if type(self).calls == 2:
            raise RuntimeError("backend crashed")
        return crops[:, ::-1].copy()

    def restore_crops(
        self, crops: np.ndarray, key: bytes | None, pasted_at: float | None = None
    ) -> np.ndarray:
        raise base.not_reversible(self.name)


def test_crash_mid_batch_leaves_no_output(
    lab: Lab, tmp_path: Path, photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(base.BACKENDS, "exploding", f"{__name__}:ExplodingBackend")
    ExplodingBackend.calls = 0
    with pytest.raises(RuntimeError, match="backend crashed"):
        _run(lab, [photos], tmp_path / "out", backend="exploding")
    assert list((tmp_path / "out").iterdir()) == []  # neither outputs nor the staging folder
    [entry] = audit_entries(lab, "anonymize")
    assert entry.outcome == "failed" and entry.details["error"] == "RuntimeError"


def test_operator_role_is_required_and_refusal_audited(
    lab: Lab, tmp_path: Path, astronaut: np.ndarray
) -> None:
    write_image(tmp_path / "in.png", astronaut)
    with lab.open("ivan") as vault, pytest.raises(PermissionDenied, match="lacks the role operator"):
        anonymize_paths(vault, [tmp_path / "in.png"], tmp_path / "out", AnonymizeOptions(), key=lab.key)
    [entry] = audit_entries(lab, "anonymize")
    assert entry.outcome == "refused" and entry.actor == "ivan"
    assert not (tmp_path / "out" / "in.png").exists()


def test_revoked_key_refuses_and_sealing_needs_a_key(lab: Lab, tmp_path: Path, astronaut: np.ndarray) -> None:
    write_image(tmp_path / "in.png", astronaut)
    with lab.open("olga") as vault, pytest.raises(ValueError, match="--seal-original needs a key"):
        anonymize_paths(vault, [tmp_path / "in.png"], tmp_path / "out", AnonymizeOptions(seal_original=True))
    with lab.open("admin") as vault:
        keys.revoke(vault, lab.key, reason="case closed")
    with pytest.raises(KeyStateError, match=f"case {CASE} has no active key"):
        _run(lab, [tmp_path / "in.png"], tmp_path / "out")
    with (
        lab.open("olga") as vault,
        pytest.raises(KeyStateError, match=f"key {lab.key} is revoked: anonymize refused"),
    ):
        anonymize_paths(vault, [tmp_path / "in.png"], tmp_path / "out", AnonymizeOptions(), key=lab.key)
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_output_folder_inside_the_input_folder_is_not_read_back(
    lab: Lab, tmp_path: Path, photos: Path
) -> None:
    first = _run(lab, [photos], photos / "released")
    second = _run(lab, [photos], photos / "released", force=True)
    assert len(first.items) == len(second.items) == 2
    assert not (photos / "released" / "released").exists()


def test_a_run_holds_no_vault_lock_while_it_works(lab: Lab, tmp_path: Path, photos: Path) -> None:
    issued = []

    def meanwhile(result: object) -> None:  # another user writes to the vault in the middle of the run
        with lab.open("admin") as admin:
            issued.append(keys.issue(admin, "C-99", "issued during a run").handle)

    with lab.open("olga") as vault:
        report = anonymize_paths(
            vault, [photos], tmp_path / "out", AnonymizeOptions(), case=CASE, on_item=meanwhile
        )
    assert len(issued) == 2 and report.exit_code == 0
    entries = audit_entries(lab)
    assert entries[-1].action == "anonymize" and entries[-1].seq == report.audit_seq
    assert read_manifest(tmp_path / "out" / "astronaut.png").audit_seq == report.audit_seq  # type: ignore[union-attr]


def test_a_key_revoked_during_the_run_publishes_nothing(lab: Lab, tmp_path: Path, photos: Path) -> None:
    def revoke(result: object) -> None:
        with lab.open("admin") as admin:
            if keys.show(admin, lab.key).state == "active":
                keys.revoke(admin, lab.key, reason="compromised")

    with lab.open("olga") as vault, pytest.raises(KeyStateError, match="is revoked: anonymize refused"):
        anonymize_paths(vault, [photos], tmp_path / "out", AnonymizeOptions(), key=lab.key, on_item=revoke)
    assert list((tmp_path / "out").iterdir()) == []
    assert audit_entries(lab, "anonymize")[-1].outcome == "refused"
