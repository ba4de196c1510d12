"""VAE latents of the training images, encoded once before the loop.

Each image is encoded at its bucket's size (and mirrored too when flips are
on: a VAE is not mirror-symmetric, so the mirror image gets its own pass).
The cache keeps each latent distribution's mean and std, not one sample, so
every step still draws a fresh latent, as if the VAE had encoded again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import AutoencoderKL

from stylebot.trainer.buckets import BucketedImage, Sample


def image_tensor(image: BucketedImage) -> torch.Tensor:
    """(1, 3, H, W) in [-1, 1], the VAE's input range."""
    array = np.asarray(image.image, dtype=np.float32)
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0) / 127.5 - 1.0


@dataclass(frozen=True)
class _Distribution:
    mean: torch.Tensor
    std: torch.Tensor


@torch.no_grad()
def _encode(vae: AutoencoderKL, pixels: torch.Tensor, device: torch.device) -> _Distribution:
    dist = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist
    return _Distribution(dist.mean.float().to(device), dist.std.float().to(device))


class LatentCache:
    """Latent distributions by image index (and mirror), on the training device."""

    def __init__(
        self,
        vae: AutoencoderKL,
        images: Sequence[BucketedImage],
        *,
        flip: bool,
        device: torch.device,
    ) -> None:
        self.scaling_factor = float(vae.config.scaling_factor)
        self._plain: list[_Distribution] = []
        self._mirrored: list[_Distribution] = []
        for image in images:
            pixels = image_tensor(image)
            self._plain.append(_encode(vae, pixels, device))
            if flip:
                self._mirrored.append(_encode(vae, torch.flip(pixels, dims=[3]), device))

    def __len__(self) -> int:
        return len(self._plain)

    def _get(self, sample: Sample) -> _Distribution:
        if sample.flipped:
            if not self._mirrored:
                raise ValueError("a mirrored sample from a cache built without flips")
            return self._mirrored[sample.index]
        return self._plain[sample.index]

    def mean(self, index: int) -> torch.Tensor:
        """The (1, C, h, w) latent mean of image `index`, scaled as the UNet sees latents."""
        return self._plain[index].mean * self.scaling_factor

    def draw(self, samples: Sequence[Sample], generator: torch.Generator) -> torch.Tensor:
        """A latent sample of each image in the batch, scaled; the draw is on the CPU generator."""
        dists = [self._get(s) for s in samples]
        mean = torch.cat([d.mean for d in dists])
        std = torch.cat([d.std for d in dists])
        draw = torch.randn(mean.shape, generator=generator).to(mean.device)
        return (mean + std * draw) * self.scaling_factor
