"""DoRA and LoKr styles in the layout AUTOMATIC1111 and ComfyUI load (LyCORIS names).

A kohya-layout module name is `lora_unet_` and the diffusers module path with
underscores for dots (ComfyUI's `model_lora_keys_unet` maps exactly these to
the UNet's weights). Under it, LyCORIS names a LoKr module's Kronecker factors
`lokr_w1`, `lokr_w2` (or their low-rank halves `lokr_w1_a`/`_b`, `lokr_w2_a`/`_b`),
as peft does too, and a DoRA module's magnitude `dora_scale` beside its
`lora_down`/`lora_up`. DoRA's magnitude is per output row in peft; ComfyUI
reads a `dora_scale` whose first dimension is the output size as exactly that
(`weight_decompose`'s `wd_on_output_axis`), so it is written as a column.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import torch

from stylebot.trainer.adapter_variants import LOKR_MARK

DORA_SCALE = ".dora_scale"
MAGNITUDE = ".lora_magnitude_vector"
LYCORIS_NETWORK_MODULE = "lycoris.kohya"


def lokr_kohya_state_dict(diffusers_lokr: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A LoKr file as the trainer saves it (`unet.<module>.lokr_w1` ...) with LyCORIS'
    module names. Loaders scale a module by alpha/rank only where a factor is split
    in low-rank halves (rank: `lokr_w2_b`'s rows, else `lokr_w1_b`'s) and never
    where both are whole, so such a module gets `.alpha` = its rank (scale 1, as
    trained) and the others none: the export follows from the file alone."""
    kohya: dict[str, torch.Tensor] = {}
    for key, tensor in diffusers_lokr.items():
        if not key.startswith("unet.") or LOKR_MARK not in key:
            raise ValueError(f"not a UNet LoKr factor: {key}")
        module, _, factor = key.removeprefix("unet.").rpartition(".")
        name = "lora_unet_" + module.replace(".", "_")
        kohya[f"{name}.{factor}"] = tensor.detach().cpu().contiguous()
        if factor in ("lokr_w2_b", "lokr_w1_b") and f"{name}.alpha" not in kohya:
            kohya[f"{name}.alpha"] = torch.tensor(float(tensor.shape[0]), dtype=torch.float32)
    if not kohya:
        raise ValueError("no LoKr factors to convert")
    return kohya


def flow_lycoris_state_dict(diffusers_file: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A FLUX.1 / SD 3.5 style as the flow trainer saves it (`transformer.<module>.`
    then peft's names) in the names ComfyUI loads under its "transformer." key map:
    LoRA's `lora_A`/`lora_B` as they are, DoRA's magnitude as a `dora_scale` column,
    LoKr's factors as they are with `.alpha` by `lokr_kohya_state_dict`'s rule."""
    out: dict[str, torch.Tensor] = {}
    for key, tensor in diffusers_file.items():
        if not key.startswith("transformer."):
            raise ValueError(f"not a transformer adapter tensor: {key}")
        tensor = tensor.detach().cpu().contiguous()
        if key.endswith(MAGNITUDE):
            out[key.removesuffix(MAGNITUDE) + DORA_SCALE] = tensor.reshape(-1, 1)
            continue
        out[key] = tensor
        module, _, factor = key.rpartition(".")
        if factor in ("lokr_w2_b", "lokr_w1_b") and f"{module}.alpha" not in out:
            out[f"{module}.alpha"] = torch.tensor(float(tensor.shape[0]), dtype=torch.float32)
    return out


def split_dora_scales(
    peft_layout: Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A peft-layout state dict (`unet.<module>.lora_A.weight` ...) as its LoRA
    tensors and its DoRA magnitudes in kohya's layout (diffusers' kohya converter
    misnames those): `lora_unet_<module>.dora_scale`, shaped (out, 1), which
    ComfyUI reads as a magnitude per output row, as peft trained it."""
    lora: dict[str, torch.Tensor] = {}
    scales: dict[str, torch.Tensor] = {}
    for key, tensor in peft_layout.items():
        if not key.endswith(MAGNITUDE):
            lora[key] = tensor
            continue
        if not key.startswith("unet."):
            raise ValueError(f"DoRA outside the UNet is not exported: {key}")
        module = key.removeprefix("unet.").removesuffix(MAGNITUDE)
        name = "lora_unet_" + module.replace(".", "_")
        scales[f"{name}{DORA_SCALE}"] = tensor.reshape(-1, 1)
    return lora, scales


def network_metadata(variant: str, rank: int) -> dict[str, str]:
    """kohya's `ss_network_*` keys that name the network kind as LyCORIS' trainer does."""
    if variant == "lokr":
        args = {"algo": "lokr", "factor": -1}
    elif variant == "dora":
        args = {"algo": "lora", "dora_wd": True}
    else:
        return {}
    return {
        "ss_network_module": LYCORIS_NETWORK_MODULE,
        "ss_network_args": json.dumps(args),
        "ss_network_dim": str(rank),
    }
