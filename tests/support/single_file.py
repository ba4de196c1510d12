"""Diffusers folders written as original-layout single-file checkpoints.

Users download SD 1.5 and SDXL fine-tunes as one `.safetensors` file in the
layout of the original (LDM / Stability) code; diffusers can read those but not
write them, so tests write them here: the exact inverse of diffusers' converters.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

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
        # SDXL's size/crop and pooled-text embedding.
        ("add_embedding.linear_1.", "label_emb.0.0."),
        ("add_embedding.linear_2.", "label_emb.0.2."),
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


def _unet_and_vae(model_dir: Path) -> dict[str, torch.Tensor]:
    """The UNet and VAE in the original (LDM) layout, under their usual prefixes."""
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
    return state


def _clip_text(model_dir: Path, folder: str) -> dict[str, torch.Tensor]:
    """A transformers CLIP text model's weights, named with the `text_model.` level
    (transformers 5 saves CLIPTextModel without it)."""
    return {
        (key if key.startswith(("text_model.", "text_projection")) else "text_model." + key): value
        for key, value in load_file(model_dir / folder / "model.safetensors").items()
    }


def _open_clip_text(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A CLIP text model with projection in OpenCLIP's layout (SDXL's second
    encoder, "conditioner.embedders.1.model."): q, k, v fused, the projection transposed."""
    out: dict[str, torch.Tensor] = {
        "token_embedding.weight": weights["text_model.embeddings.token_embedding.weight"],
        "positional_embedding": weights["text_model.embeddings.position_embedding.weight"],
        "ln_final.weight": weights["text_model.final_layer_norm.weight"],
        "ln_final.bias": weights["text_model.final_layer_norm.bias"],
        "text_projection": weights["text_projection.weight"].T.contiguous(),
    }
    names = [("layer_norm1", "ln_1"), ("layer_norm2", "ln_2"), ("mlp.fc1", "mlp.c_fc")]
    names += [("mlp.fc2", "mlp.c_proj"), ("self_attn.out_proj", "attn.out_proj")]
    layer = 0
    while f"text_model.encoder.layers.{layer}.layer_norm1.weight" in weights:
        ours, theirs = f"text_model.encoder.layers.{layer}.", f"transformer.resblocks.{layer}."
        for old, new in names:
            for kind in ("weight", "bias"):
                out[f"{theirs}{new}.{kind}"] = weights[f"{ours}{old}.{kind}"]
        for kind in ("weight", "bias"):
            out[f"{theirs}attn.in_proj_{kind}"] = torch.cat(
                [weights[f"{ours}self_attn.{p}_proj.{kind}"] for p in ("q", "k", "v")]
            )
        layer += 1
    return out


def write_sd_single_file(model_dir: Path, path: Path) -> Path:
    """An SD 1.x/2.x diffusers folder as one original-layout (LDM) checkpoint, as
    users download fine-tunes; the exact inverse of diffusers' converter."""
    state = _unet_and_vae(model_dir)
    for key, value in _clip_text(model_dir, "text_encoder").items():
        state["cond_stage_model.transformer." + key] = value
    save_file({k: v.contiguous() for k, v in state.items()}, path)
    return path


def write_sdxl_single_file(model_dir: Path, path: Path) -> Path:
    """An SDXL diffusers folder as one checkpoint in Stability's layout: the
    first text encoder as CLIP (embedder 0), the second as OpenCLIP (embedder 1)."""
    state = _unet_and_vae(model_dir)
    for key, value in _clip_text(model_dir, "text_encoder").items():
        state["conditioner.embedders.0.transformer." + key] = value
    for key, value in _open_clip_text(_clip_text(model_dir, "text_encoder_2")).items():
        state["conditioner.embedders.1.model." + key] = value
    save_file({k: v.contiguous() for k, v in state.items()}, path)
    return path
