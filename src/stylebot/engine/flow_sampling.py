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


def size_multiple(pipeline: object) -> int:
    """What the pipeline's width and height must be multiples of: the VAE's downsampling
    (8), times the 2x2 patch that FLUX.1's and SD 3.5's transformers see the latent in."""
    if isinstance(pipeline, FluxPipeline):
        return int(pipeline.vae_scale_factor) * 2
    if isinstance(pipeline, StableDiffusion3Pipeline):
        return int(pipeline.vae_scale_factor) * int(pipeline.patch_size)
    return 8


def drawn_size(pipeline: object, width: int, height: int) -> tuple[int, int]:
    """The size a request for `width` x `height` (multiples of 8, as the front end sizes
    pictures) is drawn at: each side rounded up to the pipeline's `size_multiple`; the
    generator scales the images back to the size asked for."""
    multiple = size_multiple(pipeline)
    return -(-width // multiple) * multiple, -(-height // multiple) * multiple
