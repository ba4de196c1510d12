"""A FLUX.1 or SD 3.5 style as ComfyUI, Forge and diffusers load it, with the same
metadata as the UNet families' kohya exports (stylebot.engine.lora_files).

The layout is the one ComfyUI's `comfy/lora.py` maps first for both families:
`transformer.<diffusers module>.lora_A.weight` / `.lora_B.weight` (its
"transformer." key map over `flux_to_diffusers` / `mmdit_to_diffusers`), which is
also diffusers' own `save_lora_weights` layout, so a plain LoRA's tensors go out
as they are. No `.alpha` keys: the trainer's alpha equals the rank, which is
the scale ComfyUI and diffusers both assume without one. DoRA's magnitudes and
LoKr's factors go under the same module names as ComfyUI's weight adapters read
them (`dora_scale`, `lokr_w1` ...: engine.lycoris_names.flow_lycoris_state_dict).
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import safetensors.torch

from stylebot.engine.lora_files import (
    StyleCard,
    _Architecture,
    _export_metadata,
    tensor_data_sha256,
)
from stylebot.engine.lycoris_names import flow_lycoris_state_dict, network_metadata
from stylebot.provenance.a1111_hashes import addnet_legacy_hash
from stylebot.queue.payloads import TrainSettings

# As kohya's sd-scripts (sai_model_spec) names these families.
_FLUX = "https://github.com/black-forest-labs/flux"
_SD3 = "https://github.com/Stability-AI/sd3.5"
FLOW_ARCHITECTURES: dict[str, _Architecture] = {
    "flux-dev": _Architecture("flux1", "flux-1-dev", _FLUX, v2=False),
    "flux-schnell": _Architecture("flux1", "flux-1-schnell", _FLUX, v2=False),
    "sd3-medium": _Architecture("sd3", "stable-diffusion-3.5-medium", _SD3, v2=False),
    "sd3-large": _Architecture("sd3", "stable-diffusion-3.5-large", _SD3, v2=False),
}


def flow_export_hash(diffusers_file: bytes) -> str:
    """`sshs_model_hash` of `flow_lora_file`'s export, from its tensors alone."""
    return tensor_data_sha256(flow_lycoris_state_dict(safetensors.torch.load(diffusers_file)))


def flow_lora_file(
    diffusers_file: bytes,
    card: StyleCard,
    settings: TrainSettings,
    *,
    variant: str,
    trained_at: datetime,
    image_count: int | None = None,
) -> bytes:
    """The style's LoRA with its metadata (kohya's, Stability's and stylebot's keys,
    the base model's variant and licence among them), as safetensors bytes."""
    tensors = flow_lycoris_state_dict(safetensors.torch.load(diffusers_file))
    ranks = [t.shape[0] for k, t in tensors.items() if k.endswith(".lora_A.weight")]
    rank = max(ranks, default=settings.rank)  # LoKr has no lora_A: the rank it trained with
    metadata = _export_metadata(
        card,
        settings,
        architecture=FLOW_ARCHITECTURES[variant],
        rank=rank,
        alpha=float(rank),
        data_sha256=tensor_data_sha256(tensors),
        source_sha256=hashlib.sha256(diffusers_file).hexdigest(),
        trained_at=trained_at,
        image_count=image_count,
    )
    metadata["ss_v2"] = "False"
    metadata.update(network_metadata(settings.lora_variant, rank))
    training_only = {key: value for key, value in metadata.items() if key.startswith("ss_")}
    metadata["sshs_legacy_hash"] = addnet_legacy_hash(
        safetensors.torch.save(tensors, metadata=training_only)
    )
    return safetensors.torch.save(tensors, metadata=metadata)
