"""The starting noise of an image: drawn on the CPU per seed, or mixed towards a variation seed."""

from __future__ import annotations

import torch

from stylebot.engine.flow_sampling import as_pipeline_latents, latent_channels
from stylebot.engine.generation_request import GenerationRequest
from stylebot.engine.models import AnyPipeline, denoiser


def _seeded_noise(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    # CPU generators give the same noise on every device for a seed.
    generator = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randn(shape, generator=generator, dtype=torch.float32)


def starting_noise(pipeline: AnyPipeline, request: GenerationRequest, index: int) -> torch.Tensor:
    """Image `index`'s starting noise, as the pipeline would draw it for its seed; with a
    variation seed, between the two seeds' noise (strength 0: exactly the seed's)."""
    shape = (
        1,
        latent_channels(pipeline),
        request.height // pipeline.vae_scale_factor,
        request.width // pipeline.vae_scale_factor,
    )
    noise = _seeded_noise(shape, request.seed + index)
    if request.variation_seed is not None:
        towards = _seeded_noise(shape, request.variation_seed + index)
        noise = slerp(request.variation_strength, noise, towards)
    model = denoiser(pipeline)
    first = next(model.parameters())
    return as_pipeline_latents(pipeline, noise).to(device=first.device, dtype=first.dtype)


def slerp(t: float, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation: keeps the noise's norm, which linear mixing shrinks."""
    if t == 0.0:
        # Exactly `a`: the formula below rounds sin(ω)·a/sin(ω) off by an ulp,
        # enough to move a pixel (seen on SD 3.5), and strength 0 promises the seed's image.
        return a
    a_unit, b_unit = a / a.norm(), b / b.norm()
    omega = torch.acos((a_unit * b_unit).sum().clamp(-1.0, 1.0))
    if torch.sin(omega).abs() < 1e-6:
        return (1.0 - t) * a + t * b
    return (torch.sin((1.0 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)
