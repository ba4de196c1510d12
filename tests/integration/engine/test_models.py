"""Writing the tiny model and loading pipelines through the users' code path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import load_file
from tests.support.single_file import write_sd_single_file

from stylebot.engine.models import (
    ModelLoadError,
    load_pipeline,
    pipeline_class_for,
    resolve_device,
    resolve_dtype,
)
from stylebot.engine.tiny_model import write_tiny_model

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def _sample(pipeline: StableDiffusionPipeline) -> np.ndarray:
    image = pipeline(
        "the sks style",
        num_inference_steps=2,
        width=64,
        height=64,
        generator=torch.Generator().manual_seed(0),
    ).images[0]
    return np.asarray(image)


def test_tiny_model_has_the_standard_diffusers_layout(tiny_model_dir: Path) -> None:
    for folder in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert (tiny_model_dir / folder).is_dir(), folder
    assert (tiny_model_dir / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert (tiny_model_dir / "vae" / "diffusion_pytorch_model.safetensors").is_file()
    assert (tiny_model_dir / "text_encoder" / "model.safetensors").is_file()
    assert (tiny_model_dir / "tokenizer" / "vocab.json").is_file()
    assert (tiny_model_dir / "tokenizer" / "merges.txt").is_file()
    index = json.loads((tiny_model_dir / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert index["safety_checker"] == [None, None]


def test_tiny_model_loads_with_sd15_architecture_and_schedule(tiny_model_dir: Path) -> None:
    pipeline = load_pipeline(str(tiny_model_dir), device="cpu")
    assert isinstance(pipeline, StableDiffusionPipeline)
    assert pipeline.safety_checker is None
    assert pipeline.device.type == "cpu"
    assert pipeline.unet.dtype == torch.float32
    assert pipeline.vae_scale_factor == 8
    assert pipeline.unet.config.down_block_types == [
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ]
    assert pipeline.scheduler.config.num_train_timesteps == 1000
    assert pipeline.scheduler.config.beta_schedule == "scaled_linear"
    assert pipeline.scheduler.config.beta_start == pytest.approx(0.00085)
    assert pipeline.scheduler.config.beta_end == pytest.approx(0.012)
    assert pipeline.tokenizer.model_max_length == 77
    ids = pipeline.tokenizer("the sks style").input_ids
    assert ids[0] == pipeline.tokenizer.bos_token_id
    assert ids[-1] == pipeline.tokenizer.eos_token_id

    image = pipeline(
        "the sks style",
        num_inference_steps=2,
        width=64,
        height=64,
        generator=torch.Generator().manual_seed(0),
    ).images[0]
    assert image.size == (64, 64)


def test_tiny_model_is_deterministic_per_seed(tmp_path: Path, tiny_model_dir: Path) -> None:
    weights = Path("unet") / "diffusion_pytorch_model.safetensors"
    same = write_tiny_model(tmp_path / "same", seed=0)
    other = write_tiny_model(tmp_path / "other", seed=1)
    assert (same / weights).read_bytes() == (tiny_model_dir / weights).read_bytes()
    assert (other / weights).read_bytes() != (tiny_model_dir / weights).read_bytes()


def test_missing_path_raises_model_load_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelLoadError, match="no-such-model"):
        load_pipeline(str(missing))
    with pytest.raises(ModelLoadError, match=r"missing\.safetensors"):
        load_pipeline(str(tmp_path / "missing.safetensors"))
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_pipeline("./relative/model")


def test_folder_that_is_not_a_model_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"model_index\.json"):
        load_pipeline(str(tmp_path))


def test_a_model_index_that_is_not_a_json_object_is_refused_naming_the_folder(
    tmp_path: Path,
) -> None:
    (tmp_path / "model_index.json").write_text(json.dumps(["StableDiffusionPipeline"]))
    with pytest.raises(ModelLoadError, match=r"model_index\.json is not a JSON object") as refused:
        load_pipeline(str(tmp_path))
    assert str(tmp_path) in str(refused.value)


def test_a_model_of_an_unknown_family_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline"}))
    with pytest.raises(ModelLoadError, match="FluxPipeline") as refused:
        load_pipeline(str(tmp_path))
    assert str(tmp_path) in str(refused.value)
    assert pipeline_class_for(None) is StableDiffusionPipeline


def test_device_and_dtype_resolution() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) == torch.float16
    assert resolve_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(ModelLoadError, match="unknown dtype"):
        resolve_dtype("int8", torch.device("cpu"))


def test_single_file_checkpoint_loads_to_the_same_model(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    checkpoint = write_sd_single_file(tiny_model_dir, tmp_path / "tiny-sd.safetensors")
    assert any(
        key.startswith("model.diffusion_model.input_blocks.") for key in load_file(checkpoint)
    )
    from_folder = load_pipeline(str(tiny_model_dir), device="cpu")
    # `config` supplies the component configs offline (users online get them from the hub).
    from_file = load_pipeline(str(checkpoint), device="cpu", config=tiny_model_dir)
    assert isinstance(from_file, StableDiffusionPipeline)
    assert from_file.safety_checker is None
    for name in ("unet", "vae", "text_encoder"):
        expected = getattr(from_folder, name).state_dict()
        loaded = getattr(from_file, name).state_dict()
        assert loaded.keys() == expected.keys(), name
        assert all(torch.equal(loaded[k], expected[k]) for k in expected), name
    # The same weights draw the same image, give or take rounding: on one CPU thread
    # the two loading paths' tensors can take different SIMD kernels (torch 2.13
    # moved a few pixels by one level of 255).
    difference = np.abs(_sample(from_file).astype(int) - _sample(from_folder).astype(int))
    assert difference.max() <= 1
    assert (difference > 0).mean() < 0.01
