"""What the vault service accepts of a workstation's anonymize options (`ifadit.pipeline.service_jobs`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ifadit.pipeline.anonymize import AnonymizeOptions
from ifadit.pipeline.service_jobs import anonymize_options_from_wire, anonymize_options_to_wire
from keyvault.service.errors import BadJobArchive


def _wire(**changes: Any) -> dict[str, Any]:
    return {**anonymize_options_to_wire(AnonymizeOptions(backend="pixelate"), None), **changes}


def test_options_survive_the_wire(tmp_path: Path) -> None:
    options = AnonymizeOptions(
        backend="img",
        backend_options=(("image", tmp_path / "sticker.png"),),
        scale=(640, 480),
        encoder_options=(("preset", "slow"),),
        max_pixels=1_000_000,
    )
    back = anonymize_options_from_wire(anonymize_options_to_wire(options, "replaceimg/sticker.png"), tmp_path)
    assert back.backend_options == (("image", tmp_path / "replaceimg" / "sticker.png"),)
    assert (back.scale, back.encoder_options, back.max_pixels) == (
        (640, 480),
        (("preset", "slow"),),
        1_000_000,
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"backend_options": [["model_dir", "/srv/other-model"]]}, "--model-dir is set where it runs"),
        ({"backend_options": [["device", "cuda"]]}, "--device is set where it runs"),
        ({"insightface_pack": "/srv/pack"}, "the insightface pack is set where it runs"),
        ({"encoder_options": [["x264-params", "stats=/etc/cron.d/x"]]}, "not x264-params"),
        ({"max_pixels": 10**12}, "max_pixels must be 1..100000000"),
        ({"owner": "root"}, "unknown anonymize option owner"),
    ],
)
def test_what_a_workstation_may_not_set_is_refused(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        anonymize_options_from_wire(_wire(**changes), tmp_path)


def test_a_replacement_picture_outside_the_job_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadJobArchive, match="refused file name"):
        anonymize_options_from_wire(
            _wire(backend="img", backend_options=[["image", "../../etc/passwd"]]), tmp_path
        )
