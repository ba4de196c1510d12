"""What differs when a flow-matching pipeline (FLUX.1, SD 3.5) samples: the call's
options per family and Flux's packed starting noise. The generator's request
handling, batching, adapters and finishing are the same for every family."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from diffusers.pipelines.flux.pipeline_flux import FluxPipeline
from diffusers.pipelines.stable_diffusion_3.pipeline_stable_diffusion_3 import (
    StableDiffusion3Pipeline,
)


def family_call_options(
    pipeline: object, negatives: Sequence[str], guidance_rescale: float
) -> dict[str, Any]:
    """The pipeline call's family-specific options.

    SD 1.5/2.x/SDXL: negative prompts and guidance rescale (zero-terminal-SNR
    models). SD 3.5: classifier-free guidance with negative prompts, no rescale.
    FLUX.1: one pass per step, no negative prompt; dev's transformer takes the
    guidance value as an input (the pipeline passes `guidance_scale` to it),
    schnell ignores it.
    """
    negative = list(negatives) if any(negatives) else None
    if isinstance(pipeline, FluxPipeline):
        return {}
    if isinstance(pipeline, StableDiffusion3Pipeline):
        return {"negative_prompt": negative}
    return {"negative_prompt": negative, "guidance_rescale": guidance_rescale}


def latent_channels(pipeline: Any) -> int:
    """Channels of the VAE's latent, which the starting noise has."""
    return int(pipeline.vae.config.latent_channels)


def as_pipeline_latents(pipeline: object, noise: torch.Tensor) -> torch.Tensor:
    """Noise of shape (1, C, h, w) as the pipeline takes `latents`: Flux's are packed
    into a sequence of 2x2 patches (as its pipeline packs the noise it draws)."""
    if isinstance(pipeline, FluxPipeline):
        batch, channels, height, width = noise.shape
        packed: torch.Tensor = pipeline._pack_latents(noise, batch, channels, height, width)
        return packed
    return noise
