"""The training loss: noise (with an optional offset) and min-SNR-γ weighting.

Follows diffusers' `train_text_to_image_lora.py` (`--snr_gamma`,
`--noise_offset`), so a style trained here weighs its timesteps the way the
reference scripts do.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stylebot.engine.diffusers_classes import DDPMScheduler


def sample_noise(
    shape: torch.Size | tuple[int, ...], generator: torch.Generator, noise_offset: float
) -> torch.Tensor:
    """Gaussian noise on the CPU generator; with an offset, plus a per-channel constant.

    The offset (Guttenberg, "Diffusion with Offset Noise") lets a model learn
    images darker or brighter overall than mid-grey. Nothing extra is drawn
    without it, so runs without an offset draw what they always drew.
    """
    noise = torch.randn(shape, generator=generator)
    if noise_offset:
        noise = noise + noise_offset * torch.randn((shape[0], shape[1], 1, 1), generator=generator)
    return noise


def snr(scheduler: DDPMScheduler, timesteps: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio alpha_t² / sigma_t² of each timestep (float32, on its device)."""
    alphas_cumprod = scheduler.alphas_cumprod.to(timesteps.device)[timesteps].float()
    return alphas_cumprod / (1.0 - alphas_cumprod)


def min_snr_weights(
    scheduler: DDPMScheduler, timesteps: torch.Tensor, gamma: float, prediction_type: str
) -> torch.Tensor:
    """Per-sample loss weights of Min-SNR-γ (Hang et al. 2023), as diffusers computes them.

    min(snr, γ) / snr for an epsilon target. A velocity error is (snr + 1) / snr
    times the epsilon error it implies, so min(snr, γ) / (snr + 1) weighs
    v-prediction exactly as epsilon is weighed.
    """
    ratio = snr(scheduler, timesteps)
    clipped = torch.clamp(ratio, max=gamma)
    if prediction_type == "epsilon":
        return clipped / ratio
    if prediction_type == "v_prediction":
        return clipped / (ratio + 1)
    raise ValueError(f"min-SNR weighting does not support prediction_type {prediction_type!r}")


def diffusion_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean squared error, each sample's mean weighted when `weights` is given (float32)."""
    if weights is None:
        return F.mse_loss(prediction.float(), target.float())
    per_sample = F.mse_loss(prediction.float(), target.float(), reduction="none")
    per_sample = per_sample.mean(dim=list(range(1, per_sample.ndim)))
    return (per_sample * weights.to(per_sample.device)).mean()
