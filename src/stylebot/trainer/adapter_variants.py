"""The kinds of adapter a style's LoRA run trains: plain LoRA, DoRA and LoKr (peft).

DoRA (Liu et al. 2024) adds a trained magnitude per output row to a LoRA
(peft's `use_dora`); LoKr (LyCORIS) learns each update as a Kronecker product
of two small factors (peft's `LoKrConfig`). Each is made with alpha equal to
its rank, so its scale is 1: that is also what loaders assume of a file
without metadata (diffusers, ComfyUI and AUTOMATIC1111 for LoKr factors stored
whole), so the saved file needs no config to load as it trained.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from diffusers.utils.state_dict_utils import convert_state_dict_to_diffusers
from peft import LoKrConfig, LoraConfig, PeftConfig
from peft.utils import get_peft_model_state_dict

from stylebot.engine.diffusers_classes import StableDiffusionPipeline, StableDiffusionXLPipeline
from stylebot.engine.models import BasePipeline
from stylebot.queue.payloads import LORA_VARIANTS

LORA_TARGET_MODULES = ["to_k", "to_q", "to_v", "to_out.0"]
# peft's tensor names of a LoKr adapter (and LyCORIS', which ComfyUI and A1111 read).
LOKR_MARK = ".lokr_"


def adapter_config(
    variant: str, rank: int, target_modules: Sequence[str] = LORA_TARGET_MODULES
) -> PeftConfig:
    """A new training adapter of `variant` (LORA_VARIANTS) on `target_modules` (the
    UNet's attention; a flow transformer's attention and feed-forward layers)."""
    if variant not in LORA_VARIANTS:
        raise ValueError(f"lora_variant must be one of {LORA_VARIANTS}, got {variant!r}")
    if variant == "lokr":
        # init_weights: one factor starts at zero, so the run starts at the base model.
        return LoKrConfig(
            r=rank, alpha=rank, target_modules=list(target_modules), init_weights=True
        )
    return LoraConfig(
        r=rank,
        lora_alpha=rank,
        init_lora_weights="gaussian",
        target_modules=list(target_modules),
        use_dora=variant == "dora",
    )


def is_lokr(state: Mapping[str, torch.Tensor] | list[str]) -> bool:
    """Whether a state dict (or its keys) holds LoKr factors."""
    return any(LOKR_MARK in key for key in state)


def diffusers_layout(peft_state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The UNet adapter's peft state dict as the trainer saves it: diffusers' LoRA
    names (`lora.down`/`lora.up`, DoRA's `lora_magnitude_vector`), LoKr's as peft
    names them (diffusers loads those as they are: `UNet.load_lora_adapter`)."""
    if is_lokr(peft_state):
        return dict(peft_state)
    return dict(convert_state_dict_to_diffusers(dict(peft_state)))


def save_adapter(
    pipeline: BasePipeline, unet: torch.nn.Module, adapter_name: str, output_dir: Path
) -> None:
    """The UNet's adapter `adapter_name` as a diffusers LoRA file in `output_dir`
    (`pytorch_lora_weights.safetensors`), by the family's own saver: SDXL's knows
    its second text encoder."""
    weights = diffusers_layout(get_peft_model_state_dict(unet, adapter_name=adapter_name))
    saver = (
        StableDiffusionXLPipeline
        if isinstance(pipeline, StableDiffusionXLPipeline)
        else StableDiffusionPipeline
    )
    saver.save_lora_weights(
        output_dir,
        unet_lora_layers={k: v.detach().contiguous() for k, v in weights.items()},
        safe_serialization=True,
    )
