"""Generator checkpoints: safetensors + config.json round trip, model id, sha256 and architecture checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ifadit.errors import ModelError
from ifadit.models.model_folder import sha256_file
from ifadit.models.stylegan2.checkpoint import load_generator, read_config, save_generator
from ifadit.models.stylegan2.networks import Generator, GeneratorConfig

CONFIG = GeneratorConfig(
    img_resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_base=128, channel_max=16
)


def saved(tmp_path: Path, card: dict[str, object] | None = None) -> tuple[Generator, Path, str]:
    torch.manual_seed(5)
    G = Generator(CONFIG).eval()
    G.mapping.w_avg.normal_()
    folder = tmp_path / "ckpt"
    return G, folder, save_generator(G, folder, name="tiny", card=card)


def test_round_trip_gives_the_same_images_and_model_id(tmp_path: Path) -> None:
    G, folder, model_id = saved(tmp_path, card={"data": "celeba-crops/train"})
    digest = sha256_file(folder / "model.safetensors")
    assert model_id == f"tiny-{digest[:12]}"
    config = read_config(folder)
    assert config["sha256"] == digest and GeneratorConfig.from_dict(config["config"]) == CONFIG
    card = json.loads((folder / "model_card.json").read_text())
    assert card["model_id"] == model_id and card["data"] == "celeba-crops/train"

    loaded, loaded_id = load_generator(folder, expected_sha256=digest)
    assert loaded_id == model_id and not loaded.training
    z = torch.randn(2, 16)
    assert torch.equal(loaded(z, noise_mode="const"), G(z, noise_mode="const"))


def test_saving_twice_is_byte_identical(tmp_path: Path) -> None:
    G, folder, model_id = saved(tmp_path)
    assert save_generator(G, tmp_path / "again", name="tiny") == model_id


def test_corrupt_weights_and_wrong_expectations_are_refused(tmp_path: Path) -> None:
    _, folder, _ = saved(tmp_path)
    with pytest.raises(ModelError, match="does not match the expected value"):
        load_generator(folder, expected_sha256="0" * 64)
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match the config.json value"):
        load_generator(folder)


def test_config_that_does_not_fit_the_weights_is_refused(tmp_path: Path) -> None:
    _, folder, _ = saved(tmp_path)
    config = read_config(folder)
    config["config"]["channel_max"] = 32
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="weights do not match the architecture"):
        load_generator(folder)


def test_missing_or_foreign_config(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="config.json: missing"):
        load_generator(tmp_path)
    (tmp_path / "config.json").write_text('{"kind": "flow"}')
    with pytest.raises(ModelError, match="not a stylegan2-generator config"):
        load_generator(tmp_path)
