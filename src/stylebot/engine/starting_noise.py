"""The starting noise of an image: drawn on the CPU per seed, or mixed towards a variation seed."""

from __future__ import annotations

import torch

from stylebot.engine.generation_request import GenerationRequest
from stylebot.engine.models import BasePipeline


def _seeded_noise(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    # CPU generators give the same noise on every device for a seed.
    generator = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randn(shape, generator=generator, dtype=torch.float32)


def _latent_shape(pipeline: BasePipeline, request: GenerationRequest) -> tuple[int, ...]:
    return (
        1,
        pipeline.unet.config.in_channels,
        request.height // pipeline.vae_scale_factor,
        request.width // pipeline.vae_scale_factor,
    )


def starting_noise(pipeline: BasePipeline, request: GenerationRequest, index: int) -> torch.Tensor:
    """Image `index`'s starting noise, as the pipeline would draw it for its seed."""
    latents = variation_latents(pipeline, request, index)
    if latents is not None:
        return latents
    noise = _seeded_noise(_latent_shape(pipeline, request), request.seed + index)
    return noise.to(device=pipeline.unet.device, dtype=pipeline.unet.dtype)


def variation_latents(
    pipeline: BasePipeline, request: GenerationRequest, index: int
) -> torch.Tensor | None:
    """Starting noise between the image's seed and the variation seed, or None.

    Drawn on the CPU like the pipeline's own noise, so strength 0 gives
    exactly the image the seed alone gives.
    """
    if request.variation_seed is None:
        return None
    shape = _latent_shape(pipeline, request)
    mixed = slerp(
        request.variation_strength,
        _seeded_noise(shape, request.seed + index),
        _seeded_noise(shape, request.variation_seed + index),
    )
    return mixed.to(device=pipeline.unet.device, dtype=pipeline.unet.dtype)


def slerp(t: float, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation: keeps the noise's norm, which linear mixing shrinks."""
    a_unit, b_unit = a / a.norm(), b / b.norm()
    omega = torch.acos((a_unit * b_unit).sum().clamp(-1.0, 1.0))
    if torch.sin(omega).abs() < 1e-6:
        return (1.0 - t) * a + t * b
    return (torch.sin((1.0 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)
