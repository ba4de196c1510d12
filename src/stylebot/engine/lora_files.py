"""A style's LoRA as a file other tools load (kohya's layout, with metadata).

The trainer saves diffusers' LoRA layout (`unet.<module>.lora.down.weight`).
AUTOMATIC1111, ComfyUI and diffusers' own kohya path all read kohya's layout
(`lora_unet_<module_with_underscores>.lora_down.weight` / `.lora_up.weight`,
plus a `.alpha` per module), so `kohya_lora_file` converts with diffusers'
state-dict converters and writes the metadata those tools show: kohya's
`ss_*` keys, Stability's `modelspec.*` keys, and ours (`stylebot.*`).
For SDXL, kohya's sd-scripts (and so AUTOMATIC1111 and ComfyUI) name the UNet's
layers after Stability's reference UNet (`input_blocks_4_1_...`), not after
diffusers' blocks; `sgm_unet_names` renames them so, from the UNet's own config,
and diffusers' loader maps them back (`_maybe_map_sgm_blocks_to_diffusers`).

Loading a LoRA so that it proves to fit is `stylebot.engine.lora_loading`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import safetensors.torch
import torch
from diffusers.utils.state_dict_utils import (
    convert_state_dict_to_diffusers,
    convert_state_dict_to_kohya,
    convert_state_dict_to_peft,
    convert_unet_state_dict_to_peft,
)

from stylebot.engine.lycoris_names import (
    lokr_kohya_state_dict,
    network_metadata,
    split_dora_scales,
)
from stylebot.provenance.a1111_hashes import addnet_legacy_hash
from stylebot.queue.payloads import TrainSettings
from stylebot.trainer.adapter_variants import is_lokr

KOHYA_NETWORK_MODULE = "networks.lora"
MODELSPEC_VERSION = "1.0.0"
# diffusers' key for the peft LoraConfig it saves with a LoRA (lora_base.LORA_ADAPTER_METADATA_KEY).
_DIFFUSERS_ADAPTER_METADATA = "lora_adapter_metadata"
# The LoRA tensors of a kohya file; `.alpha` scalars are settings, not layers.
_KOHYA_DOWN = ".lora_down.weight"
# diffusers' attention blocks as convert_state_dict_to_kohya names them: the part
# before the transformer's own layers, which keep their names in both layouts.
_DIFFUSERS_BLOCK_ATTENTION = re.compile(
    r"lora_unet_(?P<side>down|up)_blocks_(?P<block>\d+)_attentions_(?P<layer>\d+)_(?P<rest>.+)"
)
_DIFFUSERS_MID_ATTENTION = re.compile(r"lora_unet_mid_block_attentions_0_(?P<rest>.+)")


@dataclass(frozen=True)
class _Architecture:
    """How kohya's and Stability's metadata name a base model family."""

    kohya_version: str  # ss_base_model_version, as sd-scripts writes it
    modelspec: str  # modelspec.architecture, before "/lora"
    implementation: str  # modelspec.implementation
    v2: bool


_SD15 = _Architecture("sd_v1", "stable-diffusion-v1", "diffusers", v2=False)
_ARCHITECTURES: dict[tuple[str, str], _Architecture] = {
    ("sd15", "epsilon"): _SD15,
    ("sd15", "v_prediction"): _SD15,
    ("sd2", "epsilon"): _Architecture("sd_v2", "stable-diffusion-v2-512", "diffusers", v2=True),
    ("sd2", "v_prediction"): _Architecture(
        "sd_v2", "stable-diffusion-v2-768-v", "diffusers", v2=True
    ),
    # sd-scripts names SDXL LoRAs after Stability's reference implementation.
    ("sdxl", "epsilon"): _Architecture(
        "sdxl_base_v1-0",
        "stable-diffusion-xl-v1-base",
        "https://github.com/Stability-AI/generative-models",
        v2=False,
    ),
}
# SDXL v-prediction fine-tunes are SDXL to every loader (not SD 1.5, the fallback).
_ARCHITECTURES[("sdxl", "v_prediction")] = _ARCHITECTURES[("sdxl", "epsilon")]


@dataclass(frozen=True)
class StyleCard:
    """What an exported LoRA says about its style, from the train job."""

    style_name: str
    trigger: str
    # An SPDX license expression (`LicenseRef-...` for licences without an id).
    licence: str = ""
    consent_id: int | None = None
    # The base model the worker trained on, as `model_label` names it.
    base_model: str = ""
    # A single-file base checkpoint's SHA-256 and old A1111 hash (a1111_hashes), as
    # sd-scripts records them so Civitai and A1111 link the LoRA to it; "" otherwise.
    base_model_sha256: str = ""
    base_model_legacy_hash: str = ""
    # The base's family variant (sd15 ... flux-dev) and licence (engine.families), as
    # the style's record keeps them (queue.payloads.TrainedBase); "": not known.
    base_model_variant: str = ""
    base_model_licence: str = ""
    base_model_licence_url: str = ""
    # kohya's ss_tag_frequency (stylebot.trainer.captions.tag_frequency); None: not known.
    tag_frequency: Mapping[str, Mapping[str, int]] | None = None


def kohya_state_dict(
    diffusers_lora: Mapping[str, torch.Tensor], *, alpha: float | None = None
) -> dict[str, torch.Tensor]:
    """diffusers' LoRA layout in kohya's, by diffusers' converters, with an `.alpha`
    for every module.

    Without `alpha` each module's alpha is its rank: a diffusers file without
    adapter metadata loads with scale alpha/rank = 1, so that is what keeps
    the two files equivalent.
    """
    peft_layout, dora_scales = split_dora_scales(_peft_layout(diffusers_lora))
    kohya = convert_state_dict_to_kohya(peft_layout)
    if not any(key.endswith(_KOHYA_DOWN) for key in kohya):
        raise ValueError("no LoRA layers to convert: not a diffusers LoRA state dict")
    for key, weight in list(kohya.items()):
        if key.endswith(_KOHYA_DOWN):
            module = key.removesuffix(_KOHYA_DOWN)
            value = float(alpha) if alpha is not None else float(weight.shape[0])
            # float32 scalars, as kohya writes them (the converter makes int64 ones).
            kohya[f"{module}.alpha"] = torch.tensor(value, dtype=torch.float32)
    kohya.update(dora_scales)
    return {key: tensor.detach().cpu().contiguous() for key, tensor in kohya.items()}


def sgm_unet_names(
    kohya: Mapping[str, torch.Tensor], unet_config: Mapping[str, Any]
) -> dict[str, torch.Tensor]:
    """kohya-layout UNet keys with diffusers' block names (`lora_unet_down_blocks_1_
    attentions_0_...`) renamed after Stability's UNet, as sd-scripts names SDXL LoRAs
    (`lora_unet_input_blocks_4_1_...`); other keys (text encoders) stay as they are.

    The numbers come from `unet_config` (a diffusers UNet's config), so a UNet with
    other block counts than SDXL's gets its own. Stability's UNet numbers its input
    blocks 0 (conv_in), then per level `layers_per_block` (ResBlock, transformer)
    blocks and a downsampler; its output blocks per level `layers_per_block + 1`
    (ResBlock, transformer[, upsampler]) blocks; its middle block is (ResBlock,
    transformer, ResBlock). The transformer is module 1 of its block. This is the
    inverse of diffusers' `_maybe_map_sgm_blocks_to_diffusers`, which loads it back.
    """
    per_level = unet_config["layers_per_block"]
    if not isinstance(per_level, int):  # per-level counts: no SDXL has them, nor the inverse
        raise ValueError(f"no SGM names for a UNet with layers_per_block={per_level!r}")
    limits = {
        "down": (len(unet_config["down_block_types"]), per_level),
        "up": (len(unet_config["up_block_types"]), per_level + 1),
    }
    renamed: dict[str, torch.Tensor] = {}
    for key, tensor in kohya.items():
        module, dot, suffix = key.partition(".")
        if not module.startswith("lora_unet_"):
            renamed[key] = tensor
            continue
        if mid := _DIFFUSERS_MID_ATTENTION.fullmatch(module):
            renamed[f"lora_unet_middle_block_1_{mid['rest']}{dot}{suffix}"] = tensor
            continue
        found = _DIFFUSERS_BLOCK_ATTENTION.fullmatch(module)
        if found is None:
            raise ValueError(f"no SGM name for {module}: only attention blocks are mapped")
        side, block, layer = found["side"], int(found["block"]), int(found["layer"])
        blocks, layers = limits[side]
        if block >= blocks or layer >= layers:
            raise ValueError(f"{module} does not fit a UNet of this config")
        index = block * (layers + 1) + layer + 1 if side == "down" else block * layers + layer
        stage = "input_blocks" if side == "down" else "output_blocks"
        renamed[f"lora_unet_{stage}_{index}_1_{found['rest']}{dot}{suffix}"] = tensor
    return renamed


def _peft_layout(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`unet.<module>.lora_A.weight` keys (and text encoders' likewise), as peft names them."""
    unet = {k: v for k, v in state.items() if k.startswith("unet.")}
    others = {k: v for k, v in state.items() if not k.startswith("unet.")}
    converted = dict(convert_unet_state_dict_to_peft(unet)) if unet else {}
    if others:
        if all(".lora_A." in k or ".lora_B." in k for k in others):
            converted.update(others)
        else:
            converted.update(convert_state_dict_to_peft(convert_state_dict_to_diffusers(others)))
    return converted


def tensor_data_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of a safetensors file's tensor data, header excluded.

    This is kohya's `sshs_model_hash` (and `modelspec.hash_sha256`): it stays
    the same whatever the metadata says, so the file can carry its own hash.
    """
    raw = safetensors.torch.save(dict(tensors))
    header = int.from_bytes(raw[:8], "little")
    return hashlib.sha256(raw[8 + header :]).hexdigest()


def read_safetensors_metadata(data: bytes) -> dict[str, str]:
    """The `__metadata__` of a safetensors file held in memory ({} when it has none)."""
    if len(data) < 8:
        raise ValueError("not a safetensors file: shorter than its header length")
    header_length = int.from_bytes(data[:8], "little")
    try:
        header = json.loads(data[8 : 8 + header_length])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a safetensors file: {exc}") from exc
    metadata = header.get("__metadata__") or {}
    return {str(k): str(v) for k, v in metadata.items()}


def _trained_alpha(source_metadata: Mapping[str, str]) -> float | None:
    """The lora_alpha diffusers saved with the adapter config, if it saved one."""
    raw = source_metadata.get(_DIFFUSERS_ADAPTER_METADATA)
    if not raw:
        return None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError:
        return None
    # The saved config is per component: {"unet.lora_alpha": 8, ...} or nested.
    for key, value in config.items():
        if key.endswith("lora_alpha") and isinstance(value, int | float):
            return float(value)
    return None


def kohya_lora_file(
    diffusers_file: bytes,
    card: StyleCard,
    settings: TrainSettings,
    *,
    family: str,
    prediction_type: str,
    trained_at: datetime,
    image_count: int | None = None,
    unet_config: Mapping[str, Any] | None = None,
) -> bytes:
    """The style's LoRA in kohya's layout with its metadata, as safetensors bytes.

    `diffusers_file` is what the trainer saved. `family` is
    `stylebot.engine.models.model_family` of the pipeline it trained on, and
    `unet_config` its UNet's config: an SDXL LoRA gets sd-scripts' SGM names from
    it (`sgm_unet_names`); without it, diffusers' block names.
    """
    tensors = kohya_export_tensors(diffusers_file, family=family, unet_config=unet_config)
    ranks = {t.shape[0] for k, t in tensors.items() if k.endswith(_KOHYA_DOWN)}
    rank = max(ranks, default=settings.rank)  # LoKr has no lora_down: the rank it trained with
    alpha = _trained_alpha(read_safetensors_metadata(diffusers_file))
    metadata = _export_metadata(
        card,
        settings,
        architecture=_ARCHITECTURES.get((family, prediction_type), _SD15),
        rank=rank,
        alpha=alpha if alpha is not None else float(rank),
        data_sha256=tensor_data_sha256(tensors),
        source_sha256=hashlib.sha256(diffusers_file).hexdigest(),
        trained_at=trained_at,
        image_count=image_count,
    )
    metadata.update(network_metadata(settings.lora_variant, rank))
    # As sd-scripts' precalculate_safetensors_hashes: over the file with its ss_* keys only.
    training_only = {key: value for key, value in metadata.items() if key.startswith("ss_")}
    metadata["sshs_legacy_hash"] = addnet_legacy_hash(
        safetensors.torch.save(tensors, metadata=training_only)
    )
    return safetensors.torch.save(tensors, metadata=metadata)


def kohya_export_tensors(
    diffusers_file: bytes, *, family: str, unet_config: Mapping[str, Any] | None = None
) -> dict[str, torch.Tensor]:
    """The tensors `kohya_lora_file` writes for `diffusers_file` (arguments as there)."""
    alpha = _trained_alpha(read_safetensors_metadata(diffusers_file))
    state = safetensors.torch.load(diffusers_file)
    tensors = (
        lokr_kohya_state_dict(state) if is_lokr(state) else kohya_state_dict(state, alpha=alpha)
    )
    if family == "sdxl" and unet_config is not None:
        tensors = sgm_unet_names(tensors, unet_config)
    return tensors


def export_model_hash(
    diffusers_file: bytes, *, family: str, unet_config: Mapping[str, Any] | None = None
) -> str:
    """`sshs_model_hash` of the file `kohya_lora_file` makes from `diffusers_file`.

    It covers the tensor data alone, so it is the same whatever metadata (training
    time, licence) the export carries: generation can name the file the owner
    downloads without having it.
    """
    return tensor_data_sha256(
        kohya_export_tensors(diffusers_file, family=family, unet_config=unet_config)
    )


def stylebot_version() -> str:
    try:
        return importlib.metadata.version("stylebot")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return "unknown"


def _export_metadata(
    card: StyleCard,
    settings: TrainSettings,
    *,
    architecture: _Architecture,
    rank: int,
    alpha: float,
    data_sha256: str,
    source_sha256: str,
    trained_at: datetime,
    image_count: int | None,
) -> dict[str, str]:
    """String metadata: kohya's and Stability's keys where they have one, ours otherwise."""
    finished = trained_at.astimezone(UTC)
    resolution = settings.resolution
    metadata = {
        # kohya sd-scripts (what AUTOMATIC1111's and ComfyUI's LoRA info shows)
        "ss_network_module": KOHYA_NETWORK_MODULE,
        "ss_network_dim": str(rank),
        "ss_network_alpha": f"{alpha:g}",
        "ss_base_model_version": architecture.kohya_version,
        "ss_v2": str(architecture.v2),
        "ss_sd_model_name": card.base_model,
        "ss_output_name": card.style_name,
        "ss_steps": str(settings.steps),
        "ss_max_train_steps": str(settings.steps),
        "ss_resolution": f"({resolution}, {resolution})",
        "ss_learning_rate": str(settings.learning_rate),
        "ss_unet_lr": str(settings.learning_rate),
        "ss_text_encoder_lr": "0",
        "ss_network_train_unet_only": "True",
        "ss_batch_size_per_device": str(settings.batch_size),
        "ss_seed": str(settings.seed),
        "ss_training_finished_at": str(finished.timestamp()),
        "sshs_model_hash": data_sha256,
        # Stability AI's model metadata standard
        "modelspec.sai_model_spec": MODELSPEC_VERSION,
        "modelspec.architecture": f"{architecture.modelspec}/lora",
        "modelspec.implementation": architecture.implementation,
        "modelspec.title": card.style_name,
        "modelspec.resolution": f"{resolution}x{resolution}",
        "modelspec.date": finished.isoformat(timespec="seconds"),
        "modelspec.hash_sha256": f"0x{data_sha256}",
        "modelspec.trigger_phrase": card.trigger,
        "modelspec.license": card.licence,
        "modelspec.description": (
            f"stylebot style {card.style_name}: use the trigger phrase {card.trigger!r}"
        ),
        # stylebot's own: provenance back to the records that made it
        "stylebot.version": stylebot_version(),
        "stylebot.style_name": card.style_name,
        "stylebot.trigger": card.trigger,
        "stylebot.base_model": card.base_model,
        "stylebot.licence": card.licence,
        "stylebot.consent_id": "" if card.consent_id is None else str(card.consent_id),
        "stylebot.weights_sha256": data_sha256,
        # The diffusers file's hash: what generated images' provenance names as lora_hash.
        "stylebot.source_lora_sha256": source_sha256,
        "stylebot.trained_at": finished.isoformat(timespec="seconds"),
    }
    if image_count is not None:
        metadata["ss_num_train_images"] = str(image_count)
    if card.tag_frequency is not None:
        # What sd-scripts writes about captions: the trigger is the one kept token.
        metadata["ss_tag_frequency"] = json.dumps(card.tag_frequency, ensure_ascii=False)
        metadata["ss_caption_dropout_rate"] = str(settings.caption_dropout)
        metadata["ss_shuffle_caption"] = str(settings.shuffle_tags)
        metadata["ss_keep_tokens"] = "1"
    if card.base_model_sha256:
        metadata["ss_new_sd_model_hash"] = card.base_model_sha256
        metadata["ss_sd_model_hash"] = card.base_model_legacy_hash
    if card.base_model_variant:
        metadata["stylebot.base_model_variant"] = card.base_model_variant
    if card.base_model_licence:
        metadata["stylebot.base_model_licence"] = card.base_model_licence
        metadata["stylebot.base_model_licence_url"] = card.base_model_licence_url
    if not card.licence:
        del metadata["modelspec.license"]
    return metadata
