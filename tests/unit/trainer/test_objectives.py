"""Min-SNR-γ weights (as diffusers computes them), offset noise and the weighted loss."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDPMScheduler
from diffusers.training_utils import compute_snr

from stylebot.trainer.objectives import diffusion_loss, min_snr_weights, sample_noise, snr

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def scheduler() -> DDPMScheduler:
    return DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)


def test_snr_matches_diffusers(scheduler: DDPMScheduler) -> None:
    timesteps = torch.tensor([0, 10, 250, 500, 999])
    assert torch.allclose(snr(scheduler, timesteps), compute_snr(scheduler, timesteps), rtol=1e-5)


def test_min_snr_weights_for_epsilon_and_velocity(scheduler: DDPMScheduler) -> None:
    timesteps = torch.arange(0, 1000, 37)
    ratio = compute_snr(scheduler, timesteps)
    clipped = torch.minimum(ratio, torch.full_like(ratio, 5.0))
    # diffusers' train_text_to_image_lora.py: min(snr, γ)/snr, and /(snr + 1) for v.
    eps = min_snr_weights(scheduler, timesteps, 5.0, "epsilon")
    v = min_snr_weights(scheduler, timesteps, 5.0, "v_prediction")
    assert torch.allclose(eps, clipped / ratio)
    assert torch.allclose(v, clipped / (ratio + 1))
    # Low-noise timesteps (high SNR) are weighed down, noisy ones kept at 1 (epsilon).
    assert eps[0] < 0.1
    assert eps[-1] == pytest.approx(1.0)
    assert torch.all(v <= eps)
    with pytest.raises(ValueError, match="sample"):
        min_snr_weights(scheduler, timesteps, 5.0, "sample")


def test_weighted_loss_weighs_each_sample() -> None:
    prediction = torch.zeros(2, 4, 8, 8)
    target = torch.ones(2, 4, 8, 8)
    target[1] *= 2  # per-sample MSE 1 and 4
    assert float(diffusion_loss(prediction, target)) == pytest.approx(2.5)
    weights = torch.tensor([1.0, 0.5])
    assert float(diffusion_loss(prediction, target, weights)) == pytest.approx((1 + 2) / 2)


def test_noise_offset_shifts_each_channel_and_zero_changes_nothing() -> None:
    plain = sample_noise((2, 4, 16, 16), torch.Generator().manual_seed(1), 0.0)
    again = torch.randn((2, 4, 16, 16), generator=torch.Generator().manual_seed(1))
    assert torch.equal(plain, again)
    offset = sample_noise((2, 4, 16, 16), torch.Generator().manual_seed(1), 0.5)
    shift = offset - plain
    # One constant per sample and channel.
    assert torch.allclose(shift, shift[:, :, :1, :1].expand_as(shift))
    assert shift.abs().sum() > 0
