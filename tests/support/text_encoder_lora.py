"""LoRA layers for a CLIP text encoder, as other trainers put into kohya files.

Made with peft directly on a copy of the encoder: transformers' own adapter methods
(`add_adapter`, `delete_adapter`) demand a newer peft than some releases pair with,
and a copy leaves the pipeline under test untouched.
"""

from __future__ import annotations

import copy

import torch
from diffusers.utils.state_dict_utils import convert_state_dict_to_kohya
from peft import LoraConfig, inject_adapter_in_model
from peft.utils import get_peft_model_state_dict

TEXT_ENCODER_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


def text_encoder_lora_layers(
    text_encoder: torch.nn.Module, rank: int, *, init: str | bool = "gaussian"
) -> dict[str, torch.Tensor]:
    """peft-named LoRA layers (`text_model.encoder.layers.0...lora_A.weight`) for the encoder."""
    config = LoraConfig(
        r=rank, lora_alpha=rank, init_lora_weights=init, target_modules=TEXT_ENCODER_TARGETS
    )
    model = inject_adapter_in_model(config, copy.deepcopy(text_encoder), adapter_name="made")
    return get_peft_model_state_dict(model, adapter_name="made")


def kohya_text_encoder_layers(layers: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same layers under kohya's `lora_te1_` names, contiguous for safetensors."""
    kohya = convert_state_dict_to_kohya({f"text_encoder.{k}": v for k, v in layers.items()})
    return {key: tensor.contiguous() for key, tensor in kohya.items()}
