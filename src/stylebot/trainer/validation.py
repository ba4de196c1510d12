"""Held-out images: did training learn something the base model did not know?

A style's held-out images never train. At every checkpoint the trainer
measures the denoising loss on them twice, with its LoRA and with the
adapter off (the base model), on the same latents, noise and timesteps every
time (drawn once from a fixed seed). A LoRA that learned the style beats the
base model on images of that style it never saw.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import torch

from stylebot.engine.diffusers_classes import DDPMScheduler
from stylebot.trainer.objectives import diffusion_loss

# Timesteps each held-out image is measured at, as fractions of the schedule:
# spread over it, since a style shows at some noise levels more than others.
_TIMESTEP_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)


def holdout_count(image_count: int) -> int:
    """One held-out image, two from 8 images on; none for a single image."""
    if image_count >= 8:
        return 2
    return 1 if image_count >= 2 else 0


def split_holdout(image_count: int, holdout: int, seed: int) -> tuple[list[int], list[int]]:
    """(training indices, held-out indices), the held-out ones picked by `seed`.

    At least one image always trains, whatever `holdout` says.
    """
    holdout = max(0, min(holdout, image_count - 1))
    held = sorted(random.Random(f"holdout:{seed}").sample(range(image_count), holdout))
    return [i for i in range(image_count) if i not in held], held


# (noisy latents, timesteps, position in the held-out images) -> the UNet's prediction
Predict = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


class ValidationSet:
    """Fixed latents, noise and timesteps for the held-out images."""

    def __init__(
        self,
        latents: Sequence[torch.Tensor],
        scheduler: DDPMScheduler,
        prediction_type: str,
        seed: int,
    ) -> None:
        generator = torch.Generator(device="cpu").manual_seed(seed)
        total = scheduler.config["num_train_timesteps"]
        timesteps = torch.tensor([int(f * total) for f in _TIMESTEP_FRACTIONS])
        self._batches: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        for latent in latents:
            clean = latent.expand(len(timesteps), -1, -1, -1)
            noise = torch.randn(clean.shape, generator=generator).to(clean.device)
            steps = timesteps.to(clean.device)
            # diffusers annotates timesteps as the legacy torch.IntTensor, which no tensor
            # operation is typed to return; an int64 tensor is what it takes.
            noisy = scheduler.add_noise(clean, noise, steps)  # type: ignore[arg-type]  # diffusers: legacy IntTensor
            if prediction_type == "epsilon":
                target = noise
            else:
                target = scheduler.get_velocity(clean, noise, steps)  # type: ignore[arg-type]  # diffusers: legacy IntTensor
            self._batches.append((noisy, steps, target))

    def __bool__(self) -> bool:
        return bool(self._batches)

    @torch.no_grad()
    def loss(self, predict: Predict) -> float:
        """Mean MSE over the held-out images and timesteps (unweighted: LoRA and base compare)."""
        losses = [
            float(diffusion_loss(predict(noisy, steps, position), target))
            for position, (noisy, steps, target) in enumerate(self._batches)
        ]
        return sum(losses) / len(losses)
