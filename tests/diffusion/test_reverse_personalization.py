"""The reverse-personalization backend on a tiny random SDXL-shaped folder and real face crops."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from ifadit.backends.base import get_backend
from ifadit.backends.reverse_personalization import MODEL_DIR_ENV, ReversePersonalizationBackend
from ifadit.errors import BackendUnavailable, ModelError
from ifadit.faces.recognize import crops_to_img
from ifadit.models.reverse_personalization.dpm_inversion import invert, regenerate
from ifadit.models.reverse_personalization.identity_adapter import ADAPTER_CONFIG, ADAPTER_WEIGHTS
from ifadit.models.reverse_personalization.sdxl import folder_sha256
from tests.diffusion.support import CROP_SIZE, TEXT_LENGTH

STEPS = 6  # enough for a trajectory with second-order steps; the tiny model needs no more


def backend(sdxl_dir: Path, **options: object) -> ReversePersonalizationBackend:
    built = get_backend("reverse-personalization", model_dir=sdxl_dir, steps=STEPS, **options)
    assert isinstance(built, ReversePersonalizationBackend)
    return built


def vae_round_trip(model: ReversePersonalizationBackend, crops: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        img = model.model.decode_latents(model.model.encode_image(crops_to_img(crops)))
    return ((img + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def test_crop_size_comes_from_the_model_folder(sdxl_dir: Path) -> None:
    model = backend(sdxl_dir)
    assert model.crop_size == CROP_SIZE and not model.reversible and model.name == "reverse-personalization"
    assert model.model_sha256 == folder_sha256(sdxl_dir) and model.model_id.startswith("sdxl-identity-")
    assert backend(sdxl_dir, crop_size=2 * CROP_SIZE).crop_size == 2 * CROP_SIZE
    with pytest.raises(ValueError, match="multiple of 16"):
        backend(sdxl_dir, crop_size=CROP_SIZE + 8)


def test_inversion_then_regeneration_at_scale_zero_reconstructs_the_latent(
    sdxl_dir: Path, face_crops: np.ndarray
) -> None:
    model = backend(sdxl_dir, identity_scale=0.0)
    sdxl, grid = model.model, model.grid
    with torch.no_grad():
        latents = sdxl.encode_image(crops_to_img(face_crops))
        text = sdxl.encode_prompts([model.source_prompt] * 2, CROP_SIZE)
        source = sdxl.with_identity(text, sdxl.adapter.null_tokens(2))
        predict = lambda x, i: sdxl.predict_x0(x, int(grid.timesteps[i]), source)  # noqa: E731
        trajectory = invert(grid, latents, predict)
        rebuilt = regenerate(grid, trajectory, predict)
    assert (
        trajectory.latents[-1].float() - latents
    ).abs().mean() > 3 * latents.abs().mean()  # moved far away
    # Measured: 0.0 (float64 solver arithmetic, identical model calls); 1e-6 leaves room for other BLAS.
    assert (rebuilt - latents).abs().max() <= 1e-6
    # Through the backend: at scale 0 the output is the VAE's own round trip of the crops.
    out = model.anonymize_crops(face_crops, None)
    assert np.abs(out.astype(int) - vae_round_trip(model, face_crops)).max() <= 1


def test_negative_identity_scale_changes_the_faces(sdxl_dir: Path, face_crops: np.ndarray) -> None:
    kept = backend(sdxl_dir, identity_scale=0.0).anonymize_crops(face_crops, None)
    pushed = backend(sdxl_dir, identity_scale=-6.0).anonymize_crops(face_crops, None)
    assert pushed.shape == face_crops.shape and pushed.dtype == np.uint8
    assert np.abs(pushed.astype(int) - kept).mean() > 5  # measured 40-45 grey levels with the tiny model


def test_attribute_prompt_is_tokenized_and_steers_regeneration(
    sdxl_dir: Path, face_crops: np.ndarray
) -> None:
    plain = backend(sdxl_dir, identity_scale=0.0)
    elderly = backend(sdxl_dir, identity_scale=0.0, attributes="an elderly man")
    assert elderly.target_prompt == "an elderly man" and plain.target_prompt == plain.source_prompt
    ids = elderly.model.tokenizer(["an elderly man"]).input_ids[0]
    # start, one token per letter (the tiny vocabulary has no merges), end; no letter became <unk> (= end)
    assert len(ids) == len("anelderlyman") + 2 and ids[0] == 0 and ids[-1] == 1 and 1 not in ids[1:-1]
    with torch.no_grad():
        a, b = (m.model.encode_prompts([m.target_prompt], CROP_SIZE) for m in (plain, elderly))
    assert a.context.shape == (1, TEXT_LENGTH, 32) and not torch.equal(a.context, b.context)
    assert not torch.equal(a.pooled, b.pooled)
    out_plain, out_elderly = (
        plain.anonymize_crops(face_crops, None),
        elderly.anonymize_crops(face_crops, None),
    )
    assert np.abs(out_elderly.astype(int) - out_plain).mean() > 5
    guided = backend(sdxl_dir, identity_scale=0.0, attributes="an elderly man", text_guidance=3.0)
    assert not np.array_equal(guided.anonymize_crops(face_crops, None), out_elderly)


def test_same_input_and_options_give_the_same_pixels(sdxl_dir: Path, face_crops: np.ndarray) -> None:
    first = backend(sdxl_dir, attributes="a young woman").anonymize_crops(face_crops, None)
    again = backend(sdxl_dir, attributes="a young woman", batch_size=1).anonymize_crops(face_crops, None)
    assert np.abs(first.astype(int) - again).max() <= 1  # batch 2 vs 1: BLAS may round differently
    assert np.array_equal(
        first, backend(sdxl_dir, attributes="a young woman").anonymize_crops(face_crops, None)
    )
    key_ignored = backend(sdxl_dir, attributes="a young woman").anonymize_crops(face_crops[:1], b"k" * 32)
    assert np.array_equal(again[:1], key_ignored)  # both ran the first crop in a batch of one


def test_crops_of_another_size_are_resized_through_the_model(sdxl_dir: Path, face_crops: np.ndarray) -> None:
    big = np.ascontiguousarray(face_crops.repeat(2, axis=1).repeat(2, axis=2))
    out = backend(sdxl_dir).anonymize_crops(big, None)
    assert out.shape == big.shape and not np.array_equal(out, big)


def test_not_reversible(sdxl_dir: Path, face_crops: np.ndarray) -> None:
    with pytest.raises(BackendUnavailable, match="not reversible"):
        backend(sdxl_dir).restore_crops(face_crops, None)


def test_without_a_model_folder_the_error_says_how_to_give_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MODEL_DIR_ENV, raising=False)
    with pytest.raises(BackendUnavailable, match="--model-dir"):
        get_backend("reverse-personalization")


def test_missing_parts_are_named(sdxl_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BackendUnavailable, match=f"{tmp_path / 'nowhere'} does not exist"):
        backend(tmp_path / "nowhere")
    partial = tmp_path / "partial"
    shutil.copytree(sdxl_dir, partial, ignore=shutil.ignore_patterns("text_encoder_2", ADAPTER_WEIGHTS))
    with pytest.raises(
        BackendUnavailable,
        match=f"{partial}.*missing text_encoder_2/, {ADAPTER_WEIGHTS} \\(see docs/backends.md",
    ):
        backend(partial)
    monkeypatch.setenv(MODEL_DIR_ENV, str(partial))
    with pytest.raises(BackendUnavailable, match="missing text_encoder_2/"):
        get_backend("reverse-personalization")


def test_invalid_parts_are_model_errors(sdxl_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(sdxl_dir, broken)
    (broken / "unet" / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match=f"{broken / 'unet'}: cannot be loaded as UNet2DConditionModel"):
        backend(broken)

    wide = tmp_path / "wide"
    shutil.copytree(sdxl_dir, wide)
    config = json.loads((wide / ADAPTER_CONFIG).read_text())
    (wide / ADAPTER_CONFIG).write_text(json.dumps({**config, "cross_attention_dim": 48}))
    with pytest.raises(ModelError, match=f"{wide / ADAPTER_WEIGHTS}: weights do not match"):
        backend(wide)

    (wide / ADAPTER_CONFIG).write_text(json.dumps({**config, "format": "other"}))
    with pytest.raises(ModelError, match="not an identity adapter config"):
        backend(wide)


def test_folder_digest_names_every_file_and_its_content(sdxl_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(sdxl_dir, copy)
    assert folder_sha256(copy) == folder_sha256(sdxl_dir)
    (copy / "tokenizer_2" / "merges.txt").write_text("#version: 0.2\n\n")
    changed = folder_sha256(copy)
    (copy / "tokenizer_2" / "merges.txt").rename(copy / "tokenizer_2" / "merges2.txt")
    assert len({folder_sha256(sdxl_dir), changed, folder_sha256(copy)}) == 3
