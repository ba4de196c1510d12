"""SD 1.5, SD 2.x and SDXL: the tiny models, and loading each from a folder,
a single-file checkpoint or a hub id through the users' code path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
)
from safetensors.torch import load_file, save_file
from tests.support.single_file import write_sd_single_file, write_sdxl_single_file
from transformers import CLIPTextModel, CLIPTextModelWithProjection

from stylebot.cli import main
from stylebot.engine.generation_request import GenerationRequest
from stylebot.engine.generator import Generator
from stylebot.engine.models import ModelLoadError, load_pipeline, model_family, single_file_family

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

UNET_WEIGHTS = Path("unet") / "diffusion_pytorch_model.safetensors"


def _sample(pipeline: StableDiffusionPipeline | StableDiffusionXLPipeline) -> np.ndarray:
    image = pipeline(
        "the sks style",
        num_inference_steps=2,
        width=64,
        height=64,
        generator=torch.Generator().manual_seed(0),
    ).images[0]
    return np.asarray(image)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    expected, loaded = a.state_dict(), b.state_dict()
    return loaded.keys() == expected.keys() and all(
        torch.equal(loaded[k], expected[k]) for k in expected
    )


def test_sd2_model_is_v_prediction_with_linear_projections(tiny_sd2_model_dir: Path) -> None:
    index = json.loads((tiny_sd2_model_dir / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    pipeline = load_pipeline(str(tiny_sd2_model_dir), device="cpu")
    assert isinstance(pipeline, StableDiffusionPipeline)
    assert model_family(pipeline) == "sd2"
    assert pipeline.scheduler.config.prediction_type == "v_prediction"
    assert pipeline.unet.config.use_linear_projection is True
    assert pipeline.text_encoder.config.hidden_act == "gelu"
    assert _sample(pipeline).shape == (64, 64, 3)


def test_sdxl_model_has_two_text_encoders_and_size_conditioning(
    tiny_sdxl_model_dir: Path,
) -> None:
    for folder in ("unet", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2"):
        assert (tiny_sdxl_model_dir / folder).is_dir(), folder
    assert (tiny_sdxl_model_dir / "tokenizer_2" / "vocab.json").is_file()
    index = json.loads((tiny_sdxl_model_dir / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionXLPipeline"

    pipeline = load_pipeline(str(tiny_sdxl_model_dir), device="cpu")
    assert isinstance(pipeline, StableDiffusionXLPipeline)
    assert model_family(pipeline) == "sdxl"
    assert type(pipeline.text_encoder) is CLIPTextModel
    assert type(pipeline.text_encoder_2) is CLIPTextModelWithProjection
    assert pipeline.tokenizer_2.pad_token == "!"
    unet = pipeline.unet.config
    assert unet.addition_embed_type == "text_time"
    assert unet.cross_attention_dim == (
        pipeline.text_encoder.config.hidden_size + pipeline.text_encoder_2.config.hidden_size
    )
    assert unet.projection_class_embeddings_input_dim == (
        6 * unet.addition_time_embed_dim + pipeline.text_encoder_2.config.projection_dim
    )
    # SDXL's own invisible watermark would fight stylebot's: never loaded.
    assert getattr(pipeline, "watermark", None) is None
    assert pipeline.vae_scale_factor == 8
    assert _sample(pipeline).shape == (64, 64, 3)


def test_cli_writes_each_family_as_the_fixtures_do(
    tmp_path: Path,
    tiny_model_dir: Path,
    tiny_sdxl_model_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["model", "tiny", "--family", "sdxl", str(tmp_path / "xl")]) == 0
    assert "sdxl" in capsys.readouterr().out
    written = (tmp_path / "xl" / UNET_WEIGHTS).read_bytes()
    assert written == (tiny_sdxl_model_dir / UNET_WEIGHTS).read_bytes()
    # No --family: SD 1.5, as before.
    assert main(["model", "tiny", str(tmp_path / "sd")]) == 0
    assert (tmp_path / "sd" / UNET_WEIGHTS).read_bytes() == (
        tiny_model_dir / UNET_WEIGHTS
    ).read_bytes()

    with pytest.raises(SystemExit) as refused:
        main(["model", "tiny", "--family", "sd4", str(tmp_path / "sd4")])
    assert refused.value.code == 2
    assert "sd4" in capsys.readouterr().err
    assert not (tmp_path / "sd4").exists()


def test_sdxl_single_file_checkpoint_loads_to_the_same_model(
    tiny_sdxl_model_dir: Path, tmp_path: Path
) -> None:
    checkpoint = write_sdxl_single_file(tiny_sdxl_model_dir, tmp_path / "tiny-xl.safetensors")
    assert single_file_family(checkpoint) == "sdxl"
    from_folder = load_pipeline(str(tiny_sdxl_model_dir), device="cpu")
    # `config` supplies the component configs offline (users online get them from the hub).
    from_file = load_pipeline(str(checkpoint), device="cpu", config=tiny_sdxl_model_dir)
    assert isinstance(from_file, StableDiffusionXLPipeline)
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        assert _same_weights(getattr(from_folder, name), getattr(from_file, name)), name
    # The same weights draw the same image, give or take rounding: on one CPU thread
    # the two loading paths' tensors can take different SIMD kernels (torch 2.13
    # moved a few pixels by one level of 255).
    difference = np.abs(_sample(from_file).astype(int) - _sample(from_folder).astype(int))
    assert difference.max() <= 1
    assert (difference > 0).mean() < 0.01


def test_sd2_single_file_checkpoint_keeps_v_prediction(
    tiny_sd2_model_dir: Path, tmp_path: Path
) -> None:
    checkpoint = write_sd_single_file(tiny_sd2_model_dir, tmp_path / "tiny-sd2.safetensors")
    pipeline = load_pipeline(str(checkpoint), device="cpu", config=tiny_sd2_model_dir)
    assert isinstance(pipeline, StableDiffusionPipeline)
    assert pipeline.scheduler.config.prediction_type == "v_prediction"
    assert _same_weights(load_pipeline(str(tiny_sd2_model_dir), device="cpu").unet, pipeline.unet)


def test_single_file_family_comes_from_keys_or_the_setting(tmp_path: Path) -> None:
    weight = torch.zeros(1)
    sdxl = tmp_path / "xl.safetensors"
    save_file({"conditioner.embedders.1.model.positional_embedding": weight}, sdxl)
    sd2 = tmp_path / "v2.ckpt"
    torch.save(
        {
            "state_dict": {
                "model.diffusion_model.out.2.weight": weight,
                "cond_stage_model.model.token_embedding.weight": weight,
            }
        },
        sd2,
    )
    sd15 = tmp_path / "v1.safetensors"
    save_file({"model.diffusion_model.out.2.weight": weight}, sd15)
    assert single_file_family(sdxl) == "sdxl"
    assert single_file_family(sd2) == "sd2"
    assert single_file_family(sd15) == "sd15"
    # The operator's setting wins over the keys.
    assert single_file_family(sd15, "sdxl") == "sdxl"


def test_single_files_of_unknown_families_or_unreadable_are_refused_naming_them(
    tmp_path: Path,
) -> None:
    lora_only = tmp_path / "a-lora.safetensors"
    save_file({"lora_unet_down_blocks_0.alpha": torch.ones(1)}, lora_only)
    with pytest.raises(ModelLoadError, match=r"a-lora\.safetensors.*unknown family"):
        load_pipeline(str(lora_only), device="cpu")

    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelLoadError, match=r"broken\.ckpt is not a readable checkpoint"):
        load_pipeline(str(broken), device="cpu")

    sd15 = tmp_path / "model.safetensors"
    save_file({"model.diffusion_model.out.2.weight": torch.ones(1)}, sd15)
    with pytest.raises(ModelLoadError, match=r"unknown model family 'sd4'.*model\.safetensors"):
        load_pipeline(str(sd15), device="cpu", family="sd4")


def test_a_single_file_forced_to_the_wrong_family_is_an_error_naming_it(
    tiny_model_dir: Path, tiny_sdxl_model_dir: Path, tmp_path: Path
) -> None:
    checkpoint = write_sd_single_file(tiny_model_dir, tmp_path / "sd15-model.safetensors")
    with pytest.raises(ModelLoadError, match=r"sd15-model\.safetensors"):
        load_pipeline(str(checkpoint), device="cpu", family="sdxl", config=tiny_sdxl_model_dir)


def test_a_hub_id_that_cannot_be_reached_is_an_error_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # This machine has no network: offline mode fails at once instead of retrying.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelLoadError, match="stylebot-tests/no-such-model") as refused:
        load_pipeline("stylebot-tests/no-such-model", device="cpu")
    assert "HF_HOME" in str(refused.value)


def test_a_hub_id_loads_from_the_hub_cache_with_its_family(
    tiny_sdxl_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The hub cache's layout, as a download leaves it: snapshots/<commit>, refs/main.
    repo = tmp_path / "hub" / "models--stylebot-tests--tiny-sdxl"
    commit = "0" * 40
    shutil.copytree(tiny_sdxl_model_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    pipeline = load_pipeline("stylebot-tests/tiny-sdxl", device="cpu")
    assert isinstance(pipeline, StableDiffusionXLPipeline)
    assert _same_weights(pipeline.unet, load_pipeline(str(tiny_sdxl_model_dir), device="cpu").unet)


def test_sd15_single_file_weights_file_is_still_detected(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    checkpoint = write_sd_single_file(tiny_model_dir, tmp_path / "tiny.safetensors")
    assert single_file_family(checkpoint) == "sd15"
    assert any(key.startswith("cond_stage_model.transformer.") for key in load_file(checkpoint))


def test_zero_terminal_snr_v_prediction_models_sample_with_guidance_rescale(
    tiny_sd2_model_dir: Path,
) -> None:
    pipeline = load_pipeline(str(tiny_sd2_model_dir), device="cpu")
    assert Generator(pipeline).guidance_rescale == 0.0
    request = GenerationRequest(prompt="the sks style", seed=1, steps=2, width=64, height=64)
    [plain] = Generator(pipeline).generate(request)
    pipeline.scheduler = DDIMScheduler.from_config(
        pipeline.scheduler.config, rescale_betas_zero_snr=True, timestep_spacing="trailing"
    )
    generator = Generator(pipeline)
    assert generator.guidance_rescale == 0.7
    [rescaled] = generator.generate(request)
    assert rescaled.size == (64, 64)
    assert not np.array_equal(np.asarray(rescaled), np.asarray(plain))


def test_an_sdxl_v_prediction_checkpoint_trains_and_samples_as_its_markers_say(
    tiny_sdxl_model_dir: Path, tmp_path: Path
) -> None:
    checkpoint = write_sdxl_single_file(tiny_sdxl_model_dir, tmp_path / "noob-vpred.safetensors")
    # As NoobAI-XL v-pred ships: empty marker tensors beside the weights.
    weights = load_file(checkpoint)
    save_file({**weights, "v_pred": torch.tensor([]), "ztsnr": torch.tensor([])}, checkpoint)
    pipeline = load_pipeline(str(checkpoint), device="cpu", config=tiny_sdxl_model_dir)
    assert isinstance(pipeline, StableDiffusionXLPipeline)
    config = pipeline.scheduler.config
    assert config.prediction_type == "v_prediction"
    assert config.rescale_betas_zero_snr is True
    assert config.timestep_spacing == "trailing"
    # Sampling rescales guidance for zero terminal SNR; the trainer's objective
    # (a DDPM scheduler from this config) predicts velocity.
    assert Generator(pipeline).guidance_rescale == 0.7
    assert DDPMScheduler.from_config(config).config.prediction_type == "v_prediction"
    # Without the markers the same file is an epsilon model, as before.
    save_file(weights, checkpoint)
    plain = load_pipeline(str(checkpoint), device="cpu", config=tiny_sdxl_model_dir)
    assert plain.scheduler.config.prediction_type == "epsilon"
