"""The tiny random models that tests and the demo write (`write_tiny_model`): each
family's real architecture and folder layout with tiny random weights, loaded by
the same `load_pipeline` a user's model goes through."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
)

from stylebot.config import TINY_FAMILIES
from stylebot.engine.diffusers_classes import (
    AutoencoderKL,
    DDIMScheduler,
    EulerDiscreteScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from stylebot.engine.models import SD15_SCHEDULE

# The kinds `write_tiny_model` writes (flux: dev-like, with the guidance input).
TINY_MODEL_KINDS = TINY_FAMILIES
_TINY_TEXT_LEN = 77  # CLIP's context length; pipelines pad prompts to it.


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte → printable character table."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars), strict=True))


def _write_tiny_tokenizer_files(folder: Path) -> None:
    """A byte-level CLIP BPE vocabulary: every byte with and without `</w>`, a
    few merges so that common letters pair up, and CLIP's two special tokens."""
    byte_chars = list(_bytes_to_unicode().values())
    tokens = byte_chars + [c + "</w>" for c in byte_chars]
    merges = ["t h", "th e</w>", "a n", "i n", "e r", "o n", "s t", "a r"]
    tokens += [merge.replace(" ", "") for merge in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {token: i for i, token in enumerate(tokens)}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")


def write_tiny_model(path: Path, *, seed: int = 0, family: str = "sd15") -> Path:
    """Write a pipeline of `family`'s architecture with tiny random weights to `path`.

    sd15: SD 1.5's block types, VAE scale factor (8), scheduler and folder
    layout. sd2: the same with SD 2.x's marks, linear attention projections in
    the UNet, a GELU text encoder (OpenCLIP's activation) and a v-prediction
    scheduler. sdxl: SDXL's three-level UNet with "text_time" added
    conditioning, two text encoders (the second with a projection, for the
    pooled embedding), two tokenizers and SDXL's Euler scheduler. Widths are
    tiny so that every family trains and samples 256x256 in seconds on a CPU,
    and every code path is the real one. Deterministic for a given seed.
    flux, flux-schnell and sd3: see stylebot.engine.tiny_flow_models.
    """
    if family not in TINY_MODEL_KINDS:
        raise ValueError(
            f"unknown model family {family!r}: use one of {', '.join(TINY_MODEL_KINDS)}"
        )
    path = Path(path)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if family in ("flux", "flux-schnell", "sd3"):
            # Imported here: it builds on this module's CLIP helpers.
            from stylebot.engine.tiny_flow_models import write_tiny_flow_model

            write_tiny_flow_model(path, family)
            return path
        pipeline = _tiny_sdxl(path) if family == "sdxl" else _tiny_sd(path, v2=family == "sd2")
        pipeline.save_pretrained(path, safe_serialization=True)
    return path


def tiny_clip_tokenizer(folder: Path, **options: Any) -> CLIPTokenizer:
    _write_tiny_tokenizer_files(folder)
    # from_pretrained reads the two files with every transformers version;
    # the constructor's signature changed between 4.x and 5.x.
    tokenizer: CLIPTokenizer = CLIPTokenizer.from_pretrained(
        folder, model_max_length=_TINY_TEXT_LEN, **options
    )
    return tokenizer


def tiny_clip_config(tokenizer: CLIPTokenizer, **options: Any) -> CLIPTextConfig:
    config: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_attention_heads": 2,
        "num_hidden_layers": 2,
        "max_position_embeddings": _TINY_TEXT_LEN,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    return CLIPTextConfig(**{**config, **options})


def _tiny_vae(scaling_factor: float) -> AutoencoderKL:
    # Typed here: diffusers' @register_to_config leaves the constructor's result untyped.
    vae: AutoencoderKL = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(16, 32, 32, 32),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=256,
        scaling_factor=scaling_factor,
    )
    return vae


def _tiny_sd(path: Path, *, v2: bool) -> StableDiffusionPipeline:
    unet = UNet2DConditionModel(
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=(
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "DownBlock2D",
        ),
        up_block_types=(
            "UpBlock2D",
            "CrossAttnUpBlock2D",
            "CrossAttnUpBlock2D",
            "CrossAttnUpBlock2D",
        ),
        block_out_channels=(32, 32, 64, 64),
        layers_per_block=1,
        cross_attention_dim=32,
        # diffusers' legacy name: the number of heads (SD 2.x: per block).
        attention_head_dim=(2, 2, 4, 4) if v2 else 2,
        use_linear_projection=v2,
        norm_num_groups=16,
    )
    vae = _tiny_vae(0.18215)
    tokenizer = tiny_clip_tokenizer(path / "tokenizer")
    text_encoder = CLIPTextModel(
        tiny_clip_config(tokenizer, hidden_act="gelu" if v2 else "quick_gelu")
    )
    scheduler = DDIMScheduler(
        **{**SD15_SCHEDULE, "prediction_type": "v_prediction" if v2 else "epsilon"},
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        # None is diffusers' documented "no checker"; its annotations lack the Optional.
        safety_checker=None,  # type: ignore[arg-type]  # diffusers' annotation lacks None
        feature_extractor=None,  # type: ignore[arg-type]  # diffusers' annotation lacks None
        requires_safety_checker=False,
    )


def _tiny_sdxl(path: Path) -> StableDiffusionXLPipeline:
    tokenizer = tiny_clip_tokenizer(path / "tokenizer")
    # SDXL's second tokenizer pads with "!" (OpenCLIP's token 0), not end-of-text.
    tokenizer_2 = tiny_clip_tokenizer(path / "tokenizer_2", pad_token="!")
    text_encoder = CLIPTextModel(tiny_clip_config(tokenizer))
    # Wider than the first, as in SDXL (768 and 1280): single-file loaders
    # tell the two encoders apart by width.
    projection_dim = 48
    text_encoder_2 = CLIPTextModelWithProjection(
        tiny_clip_config(
            tokenizer_2,
            hidden_size=48,
            intermediate_size=96,
            projection_dim=projection_dim,
            hidden_act="gelu",
        )
    )
    time_embed_dim = 8  # per size/crop number; SDXL's is 256
    unet = UNet2DConditionModel(
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(32, 64, 64),
        layers_per_block=1,
        transformer_layers_per_block=(1, 1, 2),
        attention_head_dim=(2, 4, 4),
        use_linear_projection=True,
        # The two encoders' hidden states side by side.
        cross_attention_dim=text_encoder.config.hidden_size + text_encoder_2.config.hidden_size,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_embed_dim,
        # Six size/crop numbers, each embedded, plus the pooled text embedding.
        projection_class_embeddings_input_dim=6 * time_embed_dim + projection_dim,
        norm_num_groups=16,
    )
    scheduler = EulerDiscreteScheduler(
        **SD15_SCHEDULE, timestep_spacing="leading", steps_offset=1, interpolation_type="linear"
    )
    return StableDiffusionXLPipeline(
        vae=_tiny_vae(0.13025),
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=scheduler,
        force_zeros_for_empty_prompt=True,
        add_watermarker=False,
    )


# The tiny ControlNet's weights (write_tiny_controlnet): the conditioning's last
# convolution loud enough to outweigh the noisy latents it is added to, the outputs soft
# (a FLUX.1 or SD 3.5 ControlNet's input embedding too).
_CONDITIONING_GAIN = 20.0
_OUTPUT_SPREAD = 0.2


def write_tiny_depth_estimator(path: Path, *, seed: int = 0) -> Path:
    """Write a DPT depth estimator with tiny random weights and its image processor (32 px
    inputs), as `AutoModelForDepthEstimation` loads one for /sketch follow:depth."""
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    config = DPTConfig(
        image_size=32,
        patch_size=16,
        hidden_size=32,
        num_hidden_layers=4,
        backbone_out_indices=[0, 1, 2, 3],
        num_attention_heads=4,
        intermediate_size=37,
        neck_hidden_sizes=[16, 16, 32, 32],
        reassemble_factors=[4, 2, 1, 0.5],
        fusion_hidden_size=16,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        DPTForDepthEstimation(config).save_pretrained(path)
    DPTImageProcessor(size={"height": 32, "width": 32}, keep_aspect_ratio=False).save_pretrained(
        path
    )
    return path


def write_tiny_controlnet(
    path: Path, model: Path, *, seed: int = 0, union_modes: int | None = None
) -> Path:
    """Write a ControlNet with random weights for the tiny model at `model`, of its
    family's ControlNet class. SD 1.5/2.x/SDXL: its UNet's blocks and widths (diffusers'
    `ControlNetModel.from_unet`); FLUX.1 and SD 3.5: see `write_tiny_flow_controlnet`.
    A trained ControlNet's output convolutions start at zero; these are random too, so
    that the control image visibly steers even an untrained tiny model."""
    from diffusers.models.controlnets.controlnet import ControlNetModel

    if not (model / "unet").is_dir():
        # Imported here: it builds on this module's CLIP helpers.
        from stylebot.engine.tiny_flow_models import write_tiny_flow_controlnet

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return write_tiny_flow_controlnet(path, model, _OUTPUT_SPREAD, union_modes=union_modes)
    unet = UNet2DConditionModel.from_pretrained(model / "unet")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        controlnet = ControlNetModel.from_unet(
            unet, conditioning_embedding_out_channels=(8, 16, 16, 16), load_weights_from_unet=False
        )
        # The untrained default makes the edges fade out over the conditioning convolutions;
        # He's spread keeps them.
        with torch.no_grad():
            for layer in controlnet.controlnet_cond_embedding.modules():
                if isinstance(layer, torch.nn.Conv2d):
                    fan_in = layer.weight[0].numel()
                    layer.weight.normal_(0, (2 / fan_in) ** 0.5)
            controlnet.controlnet_cond_embedding.conv_out.weight.mul_(_CONDITIONING_GAIN)
            for layer in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]:
                layer.weight.normal_(0, _OUTPUT_SPREAD)
    controlnet.save_pretrained(path, safe_serialization=True)
    return path
