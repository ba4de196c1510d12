"""The flow-matching base-model families, Flux.1 and SD 3.5: telling them apart
(from a pipeline, a model index or a single-file checkpoint's keys), their
variants and their licences.

Both are transformers (no UNet) sampled by flow matching with T5 and CLIP text
encoders. Flux.1-dev is guidance-distilled (its transformer takes the guidance
value as an input, `guidance_embeds`) and schnell is timestep-distilled (about
4 steps, no guidance); SD 3.5 samples with classifier-free guidance.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeAlias

from diffusers.models.transformers.transformer_flux import FluxTransformer2DModel
from diffusers.models.transformers.transformer_sd3 import SD3Transformer2DModel
from diffusers.pipelines.flux.pipeline_flux import FluxPipeline
from diffusers.pipelines.stable_diffusion_3.pipeline_stable_diffusion_3 import (
    StableDiffusion3Pipeline,
)

FlowPipeline: TypeAlias = FluxPipeline | StableDiffusion3Pipeline
FlowTransformer: TypeAlias = FluxTransformer2DModel | SD3Transformer2DModel
FlowFamily = Literal["flux", "sd3"]
FLOW_FAMILIES: tuple[FlowFamily, ...] = ("flux", "sd3")
FLOW_PIPELINE_CLASSES: dict[str, type[FlowPipeline]] = {
    "FluxPipeline": FluxPipeline,
    "StableDiffusion3Pipeline": StableDiffusion3Pipeline,
}
# Where a single-file checkpoint's component configs come from when the operator
# names no config folder (STYLEBOT_BASE_MODEL_CONFIG): the family's reference model.
REFERENCE_MODELS: dict[str, str] = {
    "flux-dev": "black-forest-labs/FLUX.1-dev",
    "flux-schnell": "black-forest-labs/FLUX.1-schnell",
    "sd3-medium": "stabilityai/stable-diffusion-3.5-medium",
    "sd3-large": "stabilityai/stable-diffusion-3.5-large",
}

# Black Forest Labs' original layout (the FLUX.1 release files, and ComfyUI's
# full checkpoints under model.diffusion_model.): double- and single-stream blocks.
_FLUX_KEY = "double_blocks.0.img_attn.qkv.weight"
_FLUX_GUIDANCE_KEY = "guidance_in.in_layer.weight"  # dev only: schnell has no guidance input
# Stability's MMDiT layout; SD 3.5 Medium's MMDiT-X blocks add a second attention.
_SD3_KEY = "joint_blocks.0.x_block.attn.qkv.weight"
_SD3_MEDIUM_KEY = "joint_blocks.0.x_block.attn2.qkv.weight"
_DIFFUSION_PREFIX = "model.diffusion_model."
# A transformer saved in diffusers' own layout, as some fine-tunes are shared:
# Flux has single-stream blocks, SD 3 a patch embedding with positions.
_DIFFUSERS_FLUX_KEY = "single_transformer_blocks.0.attn.to_q.weight"
_DIFFUSERS_FLUX_GUIDANCE_KEY = "time_text_embed.guidance_embedder.linear_1.weight"
_DIFFUSERS_SD3_KEY = "pos_embed.pos_embed"
_DIFFUSERS_SD3_MEDIUM_KEY = "transformer_blocks.0.attn2.to_q.weight"


def flow_family(pipeline: object) -> FlowFamily | None:
    """flux or sd3 for a flow-matching pipeline, None for a UNet one."""
    if isinstance(pipeline, FluxPipeline):
        return "flux"
    if isinstance(pipeline, StableDiffusion3Pipeline):
        return "sd3"
    return None


def is_flow_pipeline(pipeline: object) -> bool:
    return flow_family(pipeline) is not None


def flux_takes_guidance(pipeline: FlowPipeline) -> bool:
    """True for FLUX.1-dev and its fine-tunes: the transformer embeds the guidance value."""
    return isinstance(pipeline, FluxPipeline) and bool(
        pipeline.transformer.config.get("guidance_embeds")
    )


def family_variant(pipeline: object) -> str | None:
    """flux-dev, flux-schnell, sd3-medium or sd3-large (the transformer's config
    says which); None for a UNet pipeline."""
    if isinstance(pipeline, FluxPipeline):
        return "flux-dev" if flux_takes_guidance(pipeline) else "flux-schnell"
    if isinstance(pipeline, StableDiffusion3Pipeline):
        dual = pipeline.transformer.config.get("dual_attention_layers") or ()
        return "sd3-medium" if dual else "sd3-large"
    return None


def single_file_flow_variant(keys: Iterable[str]) -> str | None:
    """A checkpoint's flow variant from its key names (the original layout, with or
    without ComfyUI's model.diffusion_model. prefix, or diffusers'), or None when it
    is not Flux or SD 3."""
    names = {key.removeprefix(_DIFFUSION_PREFIX) for key in keys}
    if _FLUX_KEY in names or _DIFFUSERS_FLUX_KEY in names:
        dev = _FLUX_GUIDANCE_KEY in names or _DIFFUSERS_FLUX_GUIDANCE_KEY in names
        return "flux-dev" if dev else "flux-schnell"
    if _SD3_KEY in names or _DIFFUSERS_SD3_KEY in names:
        medium = _SD3_MEDIUM_KEY in names or _DIFFUSERS_SD3_MEDIUM_KEY in names
        return "sd3-medium" if medium else "sd3-large"
    return None


class FlowTrainsLoraOnly(ValueError):
    """A FLUX.1 or SD 3.5 base asked to train a textual-inversion token: the flow
    trainer trains a LoRA (plain, DoRA or LoKr) on the transformer only, and a
    token would need T5's embedding trained too. The operator's `train_method`
    chooses this, so `user_message` tells the member whom to ask."""

    def __init__(self, family: str, kind: str) -> None:
        super().__init__(f"{family} styles train a LoRA only, not {kind}")
        self.user_message = (
            f"this bot's base model ({family}) trains a LoRA only (plain, DoRA or LoKr), "
            f"not {kind}; ask the operator to set train_method to lora."
        )


def flow_family_of_class(class_name: str) -> FlowFamily | None:
    cls = FLOW_PIPELINE_CLASSES.get(class_name)
    if cls is None:
        return None
    return "flux" if cls is FluxPipeline else "sd3"


@dataclass(frozen=True)
class BaseModelLicence:
    """A base model's licence as the operator must know it."""

    name: str
    url: str
    # What it means for a community that sells the images it makes.
    selling_images: str


_OPENRAIL_M = BaseModelLicence(
    "CreativeML Open RAIL-M / Open RAIL++-M",
    "https://huggingface.co/spaces/CompVis/stable-diffusion-license",
    "outputs may be sold; the licence's use restrictions pass on to users",
)
LICENCES: dict[str, BaseModelLicence] = {
    "sd15": _OPENRAIL_M,
    "sd2": _OPENRAIL_M,
    "sdxl": _OPENRAIL_M,
    "flux-dev": BaseModelLicence(
        "FLUX.1 [dev] Non-Commercial License",
        "https://huggingface.co/black-forest-labs/FLUX.1-dev/blob/main/LICENSE.md",
        "the model may not be used commercially without a licence from Black Forest Labs; "
        "the licence disclaims ownership of outputs, but running a paid service on it is "
        "commercial use",
    ),
    "flux-schnell": BaseModelLicence(
        "Apache-2.0",
        "https://huggingface.co/black-forest-labs/FLUX.1-schnell",
        "outputs and the service may be sold",
    ),
    "sd3-medium": BaseModelLicence(
        "Stability AI Community License",
        "https://stability.ai/community-license-agreement",
        "free for commercial use below US$1M annual revenue; above it an enterprise "
        "licence from Stability AI is needed",
    ),
}
LICENCES["sd3-large"] = LICENCES["sd3-medium"]


def licence_for(variant: str) -> BaseModelLicence:
    """The licence of a family variant (sd15, sd2, sdxl, flux-dev, ...)."""
    return LICENCES[variant]


def load_flow_single_file(
    path: Path, family: str, source: str, options: dict[str, Any]
) -> FlowPipeline:
    """A Flux or SD 3.5 pipeline whose transformer is the checkpoint at `path` (in
    the original or diffusers layout) and whose other components come from
    `source`, a diffusers folder or hub id of the same family."""
    transformer_class = FluxTransformer2DModel if family == "flux" else SD3Transformer2DModel
    pipeline_class = FluxPipeline if family == "flux" else StableDiffusion3Pipeline
    transformer = transformer_class.from_single_file(
        str(path), config=source, subfolder="transformer", **options
    )
    pipeline: FlowPipeline = pipeline_class.from_pretrained(
        source, transformer=transformer, **options
    )
    return pipeline


# The transformer layers a style's LoRA trains: every attention projection (the
# image and the text streams) and the feed-forward layers, as diffusers'
# Flux/SD 3 LoRA trainers and ComfyUI name them. peft matches these as suffixes.
_ATTENTION = ("to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj")
_FEED_FORWARD = ("ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj", "ff_context.net.2")
LORA_TARGET_MODULES: dict[FlowFamily, tuple[str, ...]] = {
    "flux": (*(f"attn.{name}" for name in (*_ATTENTION, "to_add_out")), *_FEED_FORWARD),
    # SD 3.5 Medium's MMDiT-X blocks have a second image attention (attn2).
    "sd3": (
        *(f"attn.{name}" for name in (*_ATTENTION, "to_add_out")),
        *(f"attn2.{name}" for name in ("to_q", "to_k", "to_v", "to_out.0")),
        *_FEED_FORWARD,
    ),
}
