"""Models of real size with random weights, for the memory benchmarks.

An SD 1.5-sized pipeline (SD 1.5's UNet, its CLIP ViT-L/14 text encoder and its VAE, from
their published configs) and an SD 1.5 ControlNet of the same size, each with random
weights, written as diffusers folders that `stylebot.engine.models.load_pipeline` and the
Generator load as they would a user's. On a model of a few MB (the tiny one) the
allocator's noise and the per-pipeline overheads of Python and torch outweigh the model,
so a memory ratio measured on it shows nothing; these have the real tensors' sizes.

The tokenizer is the tiny model's byte-level one (the real CLIP vocabulary is a download);
the text encoder's embedding table has CLIP's 49,408 rows all the same, so its size is
the real one. Not a benchmark itself (the leading underscore).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import CLIPTextConfig, CLIPTextModel

from stylebot.engine.diffusers_classes import (
    AutoencoderKL,
    DDIMScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from stylebot.engine.models import SD15_SCHEDULE
from stylebot.engine.tiny_model import tiny_clip_tokenizer

# stable-diffusion-v1-5/stable-diffusion-v1-5's unet/config.json (defaults left out).
SD15_UNET: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": (
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ),
    "up_block_types": (
        "UpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
    ),
    "block_out_channels": (320, 640, 1280, 1280),
    "layers_per_block": 2,
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "norm_num_groups": 32,
}
# Its text_encoder/config.json: OpenAI's CLIP ViT-L/14 text tower.
SD15_TEXT_ENCODER: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "projection_dim": 768,
}
# Its vae/config.json.
SD15_VAE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 512,
    "scaling_factor": 0.18215,
}
# lllyasviel/control_v11p_sd15_canny's config.json: the UNet's encoder half and these.
SD15_CONTROLNET_CONDITIONING = (16, 32, 96, 256)
# Bump when a config above changes: the cached folders are rebuilt.
_VERSION = 1


def sd15_sized_models(cache: Path | None = None, *, seed: int = 0) -> tuple[Path, Path]:
    """The SD 1.5-sized model's folder and its ControlNet's, written once into `cache`
    (default: a folder in the system's temp directory) and reused: the pair is ~5.4 GB
    and takes a minute or two to write."""
    root = cache or Path(tempfile.gettempdir()) / "stylebot-bench-models"
    model = root / f"sd15-random-v{_VERSION}"
    controlnet = root / f"sd15-controlnet-random-v{_VERSION}"
    if not (model / "model_index.json").is_file():
        _write_atomically(model, lambda folder: _write_sd15(folder, seed))
    if not (controlnet / "config.json").is_file():
        _write_atomically(controlnet, lambda folder: _write_sd15_controlnet(folder, seed))
    return model, controlnet


def _write_atomically(folder: Path, write: Callable[[Path], None]) -> None:
    """Write into a sibling folder and rename it into place: an interrupted run leaves no
    half-written model behind to be taken for a whole one."""
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    write(partial)
    partial.rename(folder)


def _write_sd15(folder: Path, seed: int) -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        tokenizer = tiny_clip_tokenizer(folder / "tokenizer")
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                **SD15_TEXT_ENCODER,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        )
        pipeline = StableDiffusionPipeline(
            vae=AutoencoderKL(**SD15_VAE),
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            unet=UNet2DConditionModel(**SD15_UNET),
            scheduler=DDIMScheduler(
                **SD15_SCHEDULE, clip_sample=False, set_alpha_to_one=False, steps_offset=1
            ),
            safety_checker=None,  # type: ignore[arg-type]  # diffusers' annotation lacks None
            feature_extractor=None,  # type: ignore[arg-type]  # diffusers' annotation lacks None
            requires_safety_checker=False,
        )
        pipeline.save_pretrained(folder, safe_serialization=True)


def _write_sd15_controlnet(folder: Path, seed: int) -> None:
    from diffusers.models.controlnets.controlnet import ControlNetModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        # The UNet's encoder half: its up blocks and output are not part of a ControlNet.
        skip = ("out_channels", "up_block_types", "sample_size")
        unet_config = {key: value for key, value in SD15_UNET.items() if key not in skip}
        controlnet = ControlNetModel(
            **unet_config, conditioning_embedding_out_channels=SD15_CONTROLNET_CONDITIONING
        )
        controlnet.save_pretrained(folder, safe_serialization=True)
