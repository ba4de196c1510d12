"""Held-out images: did training learn something the base model did not know?

A style's held-out images never train. At every checkpoint the trainer
measures the denoising loss on them twice, with its LoRA and with the
adapter off (the base model), on the same latents, noise and timesteps every
time (drawn once from a fixed seed). A LoRA that learned the style beats the
base model on images of that style it never saw. The UNet families' trainer
(trainer.lora) and the flow-matching one (trainer.flow_matching) both use it.
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


# (noisy latents, timesteps, position in the held-out images) -> the model's prediction.
# Flow matching's "timesteps" are its noise levels in [0, 1].
Predict = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]
# (clean latents, noise, timestep fractions) -> (noisy latents, timesteps, target)
_Noising = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]
]


class ValidationSet:
    """Fixed latents, noise and timesteps for the held-out images: `diffusion` for
    the UNet families, `flow_matching` for FLUX.1 and SD 3.5."""

    def __init__(self, latents: Sequence[torch.Tensor], seed: int, noising: _Noising) -> None:
        generator = torch.Generator(device="cpu").manual_seed(seed)
        fractions = torch.tensor(_TIMESTEP_FRACTIONS)
        self._batches: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        for latent in latents:
            clean = latent.expand(len(fractions), -1, -1, -1)
            noise = torch.randn(clean.shape, generator=generator).to(clean.device)
            self._batches.append(noising(clean, noise, fractions.to(clean.device)))

    @classmethod
    def diffusion(
        cls,
        latents: Sequence[torch.Tensor],
        scheduler: DDPMScheduler,
        prediction_type: str,
        seed: int,
    ) -> ValidationSet:
        """DDPM noising; the target is the noise or the velocity (`prediction_type`)."""
        total = scheduler.config["num_train_timesteps"]
        # From the Python floats: float32 fractions would round 0.7 * 1000 down to 699.
        timesteps = torch.tensor([int(f * total) for f in _TIMESTEP_FRACTIONS])

        def noising(
            clean: torch.Tensor, noise: torch.Tensor, _fractions: torch.Tensor
        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            steps = timesteps.to(clean.device)
            # diffusers annotates timesteps as the legacy torch.IntTensor, which no tensor
            # operation is typed to return; an int64 tensor is what it takes.
            noisy = scheduler.add_noise(clean, noise, steps)  # type: ignore[arg-type]  # diffusers: legacy IntTensor
            if prediction_type == "epsilon":
                return noisy, steps, noise
            target = scheduler.get_velocity(clean, noise, steps)  # type: ignore[arg-type]  # diffusers: legacy IntTensor
            return noisy, steps, target

        return cls(latents, seed, noising)

    @classmethod
    def flow_matching(cls, latents: Sequence[torch.Tensor], seed: int) -> ValidationSet:
        """The straight path's point `(1 - s) * latents + s * noise` at the fixed levels
        `s` (unshifted: the figure only has to compare across steps); the target is
        the velocity `noise - latents`, as in trainer.flow_matching."""

        def noising(
            clean: torch.Tensor, noise: torch.Tensor, levels: torch.Tensor
        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            s = levels.to(clean.dtype).view(-1, 1, 1, 1)
            noise = noise.to(clean.dtype)
            return (1.0 - s) * clean + s * noise, levels.to(clean.dtype), noise - clean

        return cls(latents, seed, noising)

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
