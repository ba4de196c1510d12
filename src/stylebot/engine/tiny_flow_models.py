"""Tiny random Flux.1 and SD 3.5 pipelines (`write_tiny_flow_model`), built from configs
with no download: every component of the real pipelines, tokenizers included.

T5's tokenizer is a Unigram model built from a word list in code (transformers'
tokenizers backend takes the vocabulary directly), so no sentencepiece file and
no hub access is needed. Widths are tiny so that a 256x256 image samples in well
under a second on a CPU; the architectures, folder layouts and schedulers are
the real ones, so `load_pipeline` and the LoRA code run as for a user's model.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import torch
from diffusers.models.controlnets.controlnet_flux import FluxControlNetModel
from diffusers.models.controlnets.controlnet_sd3 import SD3ControlNetModel
from diffusers.models.transformers.transformer_flux import FluxTransformer2DModel
from diffusers.models.transformers.transformer_sd3 import SD3Transformer2DModel
from diffusers.pipelines.flux.pipeline_flux import FluxPipeline
from diffusers.pipelines.stable_diffusion_3.pipeline_stable_diffusion_3 import (
    StableDiffusion3Pipeline,
)
from diffusers.schedulers.scheduling_flow_match_euler_discrete import (
    FlowMatchEulerDiscreteScheduler,
)
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    T5Config,
    T5EncoderModel,
    T5Tokenizer,
)

from stylebot.engine.diffusers_classes import AutoencoderKL
from stylebot.engine.tiny_model import tiny_clip_config, tiny_clip_tokenizer

# Flux.1 and SD 3's VAEs have 16 latent channels; the transformers see them in
# 2x2 patches. The VAE downsamples by 8 as the real ones do.
_LATENT_CHANNELS = 16
_T5_WORDS = frozenset(
    [
        "a",
        "the",
        "of",
        "and",
        "in",
        "on",
        "at",
        "with",
        "style",
        "painting",
        "photo",
        "portrait",
        "lighthouse",
        "dawn",
        "sks",
        "cat",
        "dog",
        "red",
        "blue",
        "green",
        "light",
        "dark",
        "sky",
        "sea",
        "tree",
        "house",
        "city",
        "night",
    ]
)


def _tiny_t5_tokenizer(folder: Path) -> T5Tokenizer:
    """A Unigram tokenizer in T5's layout: pad 0, end-of-text 1, unknown 2, then
    single characters (with and without the word-start mark) and a few words,
    so that any text tokenizes."""
    pieces = ["<pad>", "</s>", "<unk>"]
    characters = "abcdefghijklmnopqrstuvwxyz0123456789.,!?'-"
    pieces += ["▁" + c for c in characters] + list(characters) + ["▁"]
    pieces += ["▁" + word for word in sorted(_T5_WORDS)]
    # Unigram scores: whole words beat their spelling, as in a trained vocabulary.
    vocab = [(piece, 0.0 if piece in ("<pad>", "</s>", "<unk>") else -10.0) for piece in pieces]
    vocab = [(p, -2.0 if p.removeprefix("▁") in _T5_WORDS else s) for p, s in vocab]
    tokenizer = T5Tokenizer(vocab=vocab, extra_ids=0)
    tokenizer.save_pretrained(folder)
    # Read back from the folder, as a pipeline load reads it.
    loaded: T5Tokenizer = T5Tokenizer.from_pretrained(folder)
    return loaded


def _tiny_t5(tokenizer: T5Tokenizer, width: int) -> T5EncoderModel:
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=width,
        d_kv=8,
        d_ff=2 * width,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        # T5 v1.1 (Flux's and SD 3's T5-XXL): gated GELU feed-forward.
        feed_forward_proj="gated-gelu",
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return T5EncoderModel(config)


def _tiny_flow_vae(scaling_factor: float, shift_factor: float) -> AutoencoderKL:
    vae: AutoencoderKL = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(16, 32, 32, 32),
        layers_per_block=1,
        latent_channels=_LATENT_CHANNELS,
        norm_num_groups=8,
        sample_size=256,
        scaling_factor=scaling_factor,
        shift_factor=shift_factor,
        # Flux.1 and SD 3 dropped the 1x1 convolutions around the latent.
        use_quant_conv=False,
        use_post_quant_conv=False,
    )
    return vae


_CLIP_WIDTH = 32


def _clip_config(tokenizer: CLIPTokenizer) -> CLIPTextConfig:
    return tiny_clip_config(
        tokenizer,
        hidden_size=_CLIP_WIDTH,
        intermediate_size=2 * _CLIP_WIDTH,
        projection_dim=_CLIP_WIDTH,
        hidden_act="gelu",
    )


def tiny_flux(path: Path, *, guidance_embeds: bool) -> FluxPipeline:
    """FLUX.1-dev's architecture (`guidance_embeds`: the distilled guidance input) or
    schnell's: CLIP-L for the pooled vector, T5 for the sequence, double- and
    single-stream blocks, and its scheduler with resolution-dependent shift."""
    tokenizer = tiny_clip_tokenizer(path / "tokenizer")
    text_encoder = CLIPTextModel(_clip_config(tokenizer))
    tokenizer_2 = _tiny_t5_tokenizer(path / "tokenizer_2")
    text_encoder_2 = _tiny_t5(tokenizer_2, width=32)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=_LATENT_CHANNELS * 4,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=text_encoder_2.config.d_model,
        pooled_projection_dim=_CLIP_WIDTH,
        guidance_embeds=guidance_embeds,
        # Rotary dimensions per axis (text index, row, column); they sum to the head width.
        axes_dims_rope=(4, 4, 8),
    )
    # schnell samples with a fixed shift; dev shifts by resolution.
    scheduler = FlowMatchEulerDiscreteScheduler(
        shift=3.0 if guidance_embeds else 1.0,
        use_dynamic_shifting=guidance_embeds,
        base_shift=0.5,
        max_shift=1.15,
        base_image_seq_len=256,
        max_image_seq_len=4096,
    )
    return FluxPipeline(
        scheduler=scheduler,
        vae=_tiny_flow_vae(0.3611, 0.1159),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        transformer=transformer,
    )


def tiny_sd3(path: Path) -> StableDiffusion3Pipeline:
    """SD 3.5's architecture: two CLIP encoders with projections (their pooled vectors
    side by side), T5 for the sequence, joint (MMDiT) blocks and a shift-3 scheduler."""
    tokenizer = tiny_clip_tokenizer(path / "tokenizer")
    text_encoder = CLIPTextModelWithProjection(_clip_config(tokenizer))
    # SD 3's second CLIP (OpenCLIP bigG) pads with "!", as SDXL's does.
    tokenizer_2 = tiny_clip_tokenizer(path / "tokenizer_2", pad_token="!")
    text_encoder_2 = CLIPTextModelWithProjection(_clip_config(tokenizer_2))
    tokenizer_3 = _tiny_t5_tokenizer(path / "tokenizer_3")
    # The CLIP hidden states side by side are padded to T5's width: at least theirs.
    text_encoder_3 = _tiny_t5(tokenizer_3, width=64)
    transformer = SD3Transformer2DModel(
        sample_size=32,
        patch_size=2,
        in_channels=_LATENT_CHANNELS,
        out_channels=_LATENT_CHANNELS,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=4,
        joint_attention_dim=text_encoder_3.config.d_model,
        caption_projection_dim=32,
        # The two CLIPs' pooled projections side by side.
        pooled_projection_dim=2 * _CLIP_WIDTH,
        pos_embed_max_size=64,
        # SD 3.5 Medium's MMDiT-X: a second self-attention in the first blocks.
        dual_attention_layers=(0,),
        qk_norm="rms_norm",
    )
    return StableDiffusion3Pipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=_tiny_flow_vae(1.5305, 0.0609),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        text_encoder_3=text_encoder_3,
        tokenizer_3=tokenizer_3,
        transformer=transformer,
    )


def write_tiny_flow_model(path: Path, kind: str) -> None:
    """Build and save `kind` (flux: FLUX.1-dev-like, flux-schnell, sd3) under `path`;
    the caller seeds torch (`write_tiny_model`)."""
    pipeline: FluxPipeline | StableDiffusion3Pipeline = (
        tiny_sd3(path) if kind == "sd3" else tiny_flux(path, guidance_embeds=kind == "flux")
    )
    pipeline.save_pretrained(path, safe_serialization=True)


def write_tiny_flow_controlnet(
    path: Path, model: Path, spread: float, *, union_modes: int | None = None
) -> Path:
    """Write a FLUX.1 (`FluxControlNetModel`) or SD 3.5 (`SD3ControlNetModel`) ControlNet
    with random weights for the tiny flow model at `model`: its transformer's widths and
    depth, from the transformer's config. A trained ControlNet's input embedding and output
    projections start at zero; these are random (`spread`), so that the control image
    visibly steers an untrained tiny model. `union_modes`: a FLUX.1 union ControlNet's
    number of kinds (`num_mode`), told the kind by number. The caller seeds torch."""
    index = json.loads((model / "model_index.json").read_text())
    flux = index["_class_name"] == "FluxPipeline"
    transformer_class = FluxTransformer2DModel if flux else SD3Transformer2DModel
    controlnet_class = FluxControlNetModel if flux else SD3ControlNetModel
    config = dict(transformer_class.load_config(model / "transformer"))
    takes = inspect.signature(controlnet_class.__init__).parameters
    options = {key: value for key, value in config.items() if key in takes}
    if union_modes is not None:
        options["num_mode"] = union_modes
    controlnet: FluxControlNetModel | SD3ControlNetModel = controlnet_class(**options)
    # The zero-initialised parts: the control's embedding and each block's output.
    zeroed: list[torch.nn.Module] = [*controlnet.controlnet_blocks]
    if isinstance(controlnet, FluxControlNetModel):
        zeroed += [*controlnet.controlnet_single_blocks, controlnet.controlnet_x_embedder]
    else:
        zeroed.append(controlnet.pos_embed_input)
    with torch.no_grad():
        for module in zeroed:
            for parameter in module.parameters():
                parameter.normal_(0, spread)
    controlnet.save_pretrained(path, safe_serialization=True)
    return path
