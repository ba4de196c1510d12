"""What a training step feeds the UNet besides noise: the images as a tensor and the
caption's conditioning."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from stylebot.engine.models import BasePipeline
from stylebot.trainer.buckets import BucketedImage
from stylebot.trainer.dataset import prepare_training_image
from stylebot.trainer.embeddings import encode_caption


def images_to_tensor(images: Sequence[Image.Image], resolution: int) -> torch.Tensor:
    """(N, 3, R, R) in [-1, 1], the VAE's input range."""
    arrays = [
        np.asarray(prepare_training_image(image, resolution), dtype=np.float32) for image in images
    ]
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    return batch / 127.5 - 1.0


@dataclass(frozen=True)
class TextConditioning:
    """What the UNet is conditioned on besides the noisy latents, encoded once.

    SD 1.x/2.x: the caption's hidden states. SDXL also takes the pooled
    embedding of its second text encoder and, per image, its size and crop
    ("time ids": original height and width, crop top and left, target height
    and width), which SDXL was trained to condition on.
    """

    hidden_states: torch.Tensor  # (1, tokens, dim)
    pooled: torch.Tensor | None = None  # (1, dim), SDXL only
    time_ids: torch.Tensor | None = None  # (images, 6), SDXL only

    def unet_kwargs(self, index: torch.Tensor) -> dict[str, Any]:
        """The UNet's conditioning arguments for the batch of images `index`."""
        batch = len(index)
        kwargs: dict[str, Any] = {"encoder_hidden_states": self.hidden_states.expand(batch, -1, -1)}
        if self.pooled is not None and self.time_ids is not None:
            kwargs["added_cond_kwargs"] = {
                "text_embeds": self.pooled.expand(batch, -1),
                "time_ids": self.time_ids[index.to(self.time_ids.device)],
            }
        return kwargs


@torch.no_grad()
def text_conditioning(pipeline: BasePipeline, caption: str, dtype: torch.dtype) -> TextConditioning:
    """The caption's conditioning, encoded once as the pipeline encodes a prompt at
    sampling. SDXL's per-image size and crop come from the buckets
    (`with_size_conditioning`)."""
    device = pipeline.unet.device
    hidden_states, pooled = encode_caption(pipeline, caption)
    return TextConditioning(
        hidden_states.to(device, dtype), None if pooled is None else pooled.to(device, dtype)
    )


def with_size_conditioning(
    conditioning: TextConditioning, images: Sequence[BucketedImage]
) -> TextConditioning:
    """SDXL's size and crop numbers for `images` in their buckets (others need none)."""
    pooled = conditioning.pooled
    if pooled is None:
        return conditioning
    time_ids = torch.tensor([image.size_conditioning() for image in images], dtype=pooled.dtype)
    return dataclasses.replace(conditioning, time_ids=time_ids.to(pooled.device))
