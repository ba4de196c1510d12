"""VAE latents of the training images, encoded once before the loop.

Each image is encoded at its bucket's size (and mirrored too when flips are
on: a VAE is not mirror-symmetric, so the mirror image gets its own pass).
The cache keeps each latent distribution's mean and std, not one sample, so
every step still draws a fresh latent, as if the VAE had encoded again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from stylebot.engine.diffusers_classes import AutoencoderKL
from stylebot.trainer.buckets import BucketedImage, Sample


def image_tensor(image: BucketedImage) -> torch.Tensor:
    """(1, 3, H, W) in [-1, 1], the VAE's input range."""
    array = np.asarray(image.image, dtype=np.float32)
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0) / 127.5 - 1.0


@dataclass(frozen=True)
class _Distribution:
    mean: torch.Tensor
    std: torch.Tensor

    def finite(self) -> bool:
        return bool(torch.isfinite(self.mean).all() and torch.isfinite(self.std).all())


def needs_upcast(vae: AutoencoderKL) -> bool:
    """Whether the VAE must run in float32: it is float16 and its config says it
    overflows there (SDXL's VAE: `force_upcast`, NaN latents in fp16, diffusers #7188)."""
    return vae.dtype == torch.float16 and bool(getattr(vae.config, "force_upcast", False))


@contextmanager
def encoding_precision(vae: AutoencoderKL) -> Iterator[None]:
    """The VAE in float32 while it encodes when `needs_upcast`, as the SDXL
    pipeline does to decode; cast back after, since the pipeline is shared."""
    if not needs_upcast(vae):
        yield
        return
    dtype = vae.dtype
    # diffusers decorates ModelMixin.to with functools.wraps(Module.to), which a type
    # checker reads as the unbound Module.to (self missing).
    vae.to(dtype=torch.float32)  # type: ignore[call-arg]  # diffusers' @wraps on `to`
    try:
        yield
    finally:
        vae.to(dtype=dtype)  # type: ignore[call-arg]  # diffusers' @wraps on `to`


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
        self.scaling_factor = float(vae.config["scaling_factor"])
        # FLUX.1's and SD 3's VAEs also centre the latent (`shift_factor`) before
        # scaling, as their pipelines undo when decoding; SD's have none.
        self.shift_factor = float(vae.config.get("shift_factor") or 0.0)
        self._plain: list[_Distribution] = []
        self._mirrored: list[_Distribution] = []
        with encoding_precision(vae):
            for image in images:
                pixels = image_tensor(image)
                self._plain.append(_encode(vae, pixels, device))
                if flip:
                    self._mirrored.append(_encode(vae, torch.flip(pixels, dims=[3]), device))

    def __len__(self) -> int:
        return len(self._plain)

    def non_finite(self) -> list[int]:
        """Indices of images whose latents (or mirrored latents) hold a NaN or inf."""
        mirrored: list[_Distribution | None] = list(self._mirrored) or [None] * len(self._plain)
        return [
            index
            for index, dists in enumerate(zip(self._plain, mirrored, strict=True))
            if not all(d is None or d.finite() for d in dists)
        ]

    def _get(self, sample: Sample) -> _Distribution:
        if sample.flipped:
            if not self._mirrored:
                raise ValueError("a mirrored sample from a cache built without flips")
            return self._mirrored[sample.index]
        return self._plain[sample.index]

    def mean(self, index: int) -> torch.Tensor:
        """The (1, C, h, w) latent mean of image `index`, scaled as the UNet sees latents."""
        return (self._plain[index].mean - self.shift_factor) * self.scaling_factor

    def draw(self, samples: Sequence[Sample], generator: torch.Generator) -> torch.Tensor:
        """A latent sample of each image in the batch, scaled; the draw is on the CPU generator."""
        dists = [self._get(s) for s in samples]
        mean = torch.cat([d.mean for d in dists])
        std = torch.cat([d.std for d in dists])
        draw = torch.randn(mean.shape, generator=generator).to(mean.device)
        return (mean + std * draw - self.shift_factor) * self.scaling_factor
