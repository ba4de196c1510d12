"""Writing the tiny model and loading pipelines through the users' code path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import load_file, save_file

from stylebot.engine import (
    ModelLoadError,
    load_pipeline,
    pipeline_class_for,
    resolve_device,
    resolve_dtype,
    write_tiny_model,
)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

# --- diffusers folder -> original SD single-file layout (test support) ---

_RESNET = [
    ("norm1", "in_layers.0"),
    ("conv1", "in_layers.2"),
    ("time_emb_proj", "emb_layers.1"),
    ("norm2", "out_layers.0"),
    ("conv2", "out_layers.3"),
    ("conv_shortcut", "skip_connection"),
]


def _unet_prefixes(config: dict) -> list[tuple[str, str]]:
    """(diffusers prefix, LDM prefix) pairs; the LDM block index counts every
    resnet/attention pair and every down/upsampler in order."""
    layers = config["layers_per_block"]
    n = len(config["block_out_channels"])
    pairs = [
        ("time_embedding.linear_1.", "time_embed.0."),
        ("time_embedding.linear_2.", "time_embed.2."),
        ("conv_in.", "input_blocks.0.0."),
        ("conv_norm_out.", "out.0."),
        ("conv_out.", "out.2."),
        ("mid_block.attentions.0.", "middle_block.1."),
    ]
    for j in range(2):
        pairs.append((f"mid_block.resnets.{j}.", f"middle_block.{2 * j}."))
    for i in range(n):
        for j in range(layers):
            block = (layers + 1) * i + j + 1
            pairs.append((f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{block}.0."))
            pairs.append((f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{block}.1."))
        if i < n - 1:
            pairs.append(
                (
                    f"down_blocks.{i}.downsamplers.0.conv.",
                    f"input_blocks.{(layers + 1) * (i + 1)}.0.op.",
                )
            )
        for j in range(layers + 1):
            block = (layers + 1) * i + j
            pairs.append((f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{block}.0."))
            pairs.append((f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{block}.1."))
        if i < n - 1:
            has_attn = "CrossAttn" in config["up_block_types"][i]
            pairs.append(
                (
                    f"up_blocks.{i}.upsamplers.0.",
                    f"output_blocks.{(layers + 1) * i + layers}.{2 if has_attn else 1}.",
                )
            )
    return pairs


def _rename(key: str, pairs: list[tuple[str, str]], inner: list[tuple[str, str]]) -> str:
    for old, new in pairs:
        if key.startswith(old):
            rest = key[len(old) :]
            for a, b in inner:
                if rest.startswith(a + "."):
                    rest = b + rest[len(a) :]
            return new + rest
    raise KeyError(key)


def _vae_key(key: str, config: dict) -> tuple[str, bool]:
    n = len(config["block_out_channels"])
    pairs = [
        ("encoder.conv_norm_out.", "encoder.norm_out."),
        ("decoder.conv_norm_out.", "decoder.norm_out."),
        ("encoder.mid_block.attentions.0.", "encoder.mid.attn_1."),
        ("decoder.mid_block.attentions.0.", "decoder.mid.attn_1."),
    ]
    for part in ("encoder", "decoder"):
        for j in range(2):
            pairs.append((f"{part}.mid_block.resnets.{j}.", f"{part}.mid.block_{j + 1}."))
    for i in range(n):
        pairs.append((f"encoder.down_blocks.{i}.resnets.", f"encoder.down.{i}.block."))
        pairs.append((f"encoder.down_blocks.{i}.downsamplers.0.", f"encoder.down.{i}.downsample."))
        pairs.append((f"decoder.up_blocks.{i}.resnets.", f"decoder.up.{n - 1 - i}.block."))
        pairs.append((f"decoder.up_blocks.{i}.upsamplers.0.", f"decoder.up.{n - 1 - i}.upsample."))
    attn = [
        ("group_norm", "norm"),
        ("to_q", "q"),
        ("to_k", "k"),
        ("to_v", "v"),
        ("to_out.0", "proj_out"),
    ]
    for old, new in pairs:
        if key.startswith(old):
            rest = key[len(old) :]
            if ".attn_1." in new:
                for a, b in attn:
                    if rest.startswith(a + "."):
                        return new + b + rest[len(a) :], True
            return new + rest.replace("conv_shortcut.", "nin_shortcut."), False
    return key, False  # conv_in, conv_out, quant_conv, post_quant_conv keep their names


def _write_single_file(model_dir: Path, path: Path) -> Path:
    """The diffusers folder as one original-layout (LDM) checkpoint, as users
    download SD 1.5 fine-tunes; the exact inverse of diffusers' converter."""
    state: dict[str, torch.Tensor] = {}
    unet_config = json.loads((model_dir / "unet" / "config.json").read_text())
    pairs = _unet_prefixes(unet_config)
    for key, value in load_file(model_dir / "unet" / "diffusion_pytorch_model.safetensors").items():
        state["model.diffusion_model." + _rename(key, pairs, _RESNET)] = value
    vae_config = json.loads((model_dir / "vae" / "config.json").read_text())
    for key, value in load_file(model_dir / "vae" / "diffusion_pytorch_model.safetensors").items():
        new_key, is_attn = _vae_key(key, vae_config)
        if is_attn and value.ndim == 2:
            value = value[:, :, None, None]  # LDM's attention projections are 1x1 convs
        state["first_stage_model." + new_key] = value
    for key, value in load_file(model_dir / "text_encoder" / "model.safetensors").items():
        # transformers 5 saves CLIPTextModel without the `text_model.` level.
        name = key if key.startswith("text_model.") else "text_model." + key
        state["cond_stage_model.transformer." + name] = value
    save_file({k: v.contiguous() for k, v in state.items()}, path)
    return path


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


def test_sdxl_is_refused_clearly_for_now(tmp_path: Path) -> None:
    (tmp_path / "model_index.json").write_text(
        json.dumps({"_class_name": "StableDiffusionXLPipeline"})
    )
    with pytest.raises(ModelLoadError, match="StableDiffusionXLPipeline"):
        load_pipeline(str(tmp_path))
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
    checkpoint = _write_single_file(tiny_model_dir, tmp_path / "tiny-sd.safetensors")
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
    assert np.array_equal(_sample(from_file), _sample(from_folder))
