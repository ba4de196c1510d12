"""The LoRA key names ComfyUI's `comfy/lora.py` loads for FLUX.1 and SD 3.5, derived
from its key maps (`model_lora_keys_unet`'s "transformer.{diffusers key}" entries
over `comfy.utils.flux_to_diffusers` / `mmdit_to_diffusers`), and the keys its
`load_lora` would leave with "lora key not loaded".

Written from those functions' tables as known-good reference data; only the
linear layers a LoRA can patch are listed (norms and embeddings are left out).
"""

from __future__ import annotations

from collections.abc import Iterable

_FLUX_DOUBLE = (
    "attn.to_q",
    "attn.to_k",
    "attn.to_v",
    "attn.add_q_proj",
    "attn.add_k_proj",
    "attn.add_v_proj",
    "attn.to_out.0",
    "attn.to_add_out",
    "norm1.linear",
    "norm1_context.linear",
    "ff.net.0.proj",
    "ff.net.2",
    "ff_context.net.0.proj",
    "ff_context.net.2",
)
_FLUX_SINGLE = ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp", "proj_out", "norm.linear")
_SD3_BLOCK = (
    "attn.to_q",
    "attn.to_k",
    "attn.to_v",
    "attn.add_q_proj",
    "attn.add_k_proj",
    "attn.add_v_proj",
    "attn.to_out.0",
    "attn.to_add_out",
    "attn2.to_q",
    "attn2.to_k",
    "attn2.to_v",
    "attn2.to_out.0",
    "norm1.linear",
    "norm1_context.linear",
    "ff.net.0.proj",
    "ff.net.2",
    "ff_context.net.0.proj",
    "ff_context.net.2",
)
# The LoRA tensor names comfy/lora.py's load_lora looks for under each mapped key.
_LORA_SUFFIXES = (
    ".lora_up.weight",
    ".lora_down.weight",
    ".lora_mid.weight",
    "_lora.up.weight",
    "_lora.down.weight",
    ".lora_B.weight",
    ".lora_A.weight",
    ".lora.up.weight",
    ".lora.down.weight",
    ".alpha",
    # load_lora's `dora_scale` beside a LoRA's halves, and comfy/weight_adapter/lokr.py's
    # Kronecker factors (whole, or in low-rank halves; `lokr_t2` for Tucker).
    ".dora_scale",
    ".lokr_w1",
    ".lokr_w2",
    ".lokr_w1_a",
    ".lokr_w1_b",
    ".lokr_w2_a",
    ".lokr_w2_b",
    ".lokr_t2",
)


def comfyui_flux_targets(double_blocks: int, single_blocks: int) -> set[str]:
    """ComfyUI's "transformer."-prefixed LoRA keys of a Flux model of this depth."""
    return {
        f"transformer.transformer_blocks.{i}.{name}"
        for i in range(double_blocks)
        for name in _FLUX_DOUBLE
    } | {
        f"transformer.single_transformer_blocks.{i}.{name}"
        for i in range(single_blocks)
        for name in _FLUX_SINGLE
    }


def comfyui_sd3_targets(blocks: int) -> set[str]:
    """ComfyUI's "transformer."-prefixed LoRA keys of an SD 3.x MMDiT of this depth."""
    return {
        f"transformer.transformer_blocks.{i}.{name}" for i in range(blocks) for name in _SD3_BLOCK
    }


def keys_not_loaded(keys: Iterable[str], targets: set[str]) -> list[str]:
    """The keys ComfyUI would log as "lora key not loaded": those that are no LoRA
    tensor name of a mapped target."""
    return sorted(
        key
        for key in keys
        if not any(key.endswith(s) and key[: -len(s)] in targets for s in _LORA_SUFFIXES)
    )
