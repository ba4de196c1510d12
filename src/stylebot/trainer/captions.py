"""Per-image captions in training: the text each image is conditioned on.

The style's trigger (with the textual-inversion token before it, when one trains) comes
first and the image's own caption after it, as kohya's sd-scripts expect with
``keep_tokens``: the trigger is the one constant across images, so it takes on what they
share (the style) while each caption names what differs (the contents). An image without
a caption trains on the trigger alone.

Two options vary the caption from step to step (``TrainSettings``): caption dropout
(``caption_dropout``, the share of steps an image trains on the trigger alone, so the
trigger works without captions too) and tag shuffling (``shuffle_tags``, the caption's
comma-separated tags in a new order each time, so no tag leans on its position). Both
draw from a generator seeded by the run's seed, the step and the image, never the run's
own random stream: a resumed run makes the same choices as the uninterrupted one.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from stylebot.engine.models import BasePipeline
from stylebot.queue.payloads import TrainSettings
from stylebot.trainer.conditioning import TextConditioning
from stylebot.trainer.embeddings import encode_caption


def captioned(prefix: str, caption: str) -> str:
    """The trigger (``prefix``) first, then the image's caption ("": the trigger alone)."""
    caption = caption.strip()
    if not caption:
        return prefix
    return f"{prefix}, {caption}" if prefix else caption


def caption_tags(caption: str) -> list[str]:
    """A caption's comma-separated tags, as kohya's ``shuffle_caption`` splits it."""
    return [tag.strip() for tag in caption.split(",") if tag.strip()]


def tag_frequency(
    trigger: str, captions: Sequence[str], image_count: int, repeats: int
) -> dict[str, dict[str, int]]:
    """kohya's ``ss_tag_frequency``: for the one "folder" (``<repeats>_<trigger>``, as
    sd-scripts names a dataset directory), how many images' captions hold each tag. The
    trigger leads every caption, so it counts once per image."""
    counts: dict[str, int] = {}
    for caption in captions or ("",) * image_count:
        for tag in dict.fromkeys(caption_tags(captioned(trigger, caption))):
            counts[tag] = counts.get(tag, 0) + 1
    return {f"{repeats}_{trigger}": counts}


@dataclass(frozen=True)
class TrainingCaptions:
    """What each of a run's images trains on: ``prefix`` (the trigger, with the token
    when one trains) and the image's own caption."""

    prefix: str
    captions: tuple[str, ...]
    caption_dropout: float = 0.0
    shuffle_tags: bool = False
    seed: int = 0

    @classmethod
    def for_run(
        cls, prefix: str, captions: Sequence[str], image_count: int, settings: TrainSettings
    ) -> TrainingCaptions:
        """``captions`` one per image, or none at all (a job from before captions)."""
        if captions and len(captions) != image_count:
            raise ValueError(f"{len(captions)} captions for {image_count} images")
        return cls(
            prefix,
            tuple(captions) if captions else ("",) * image_count,
            settings.caption_dropout,
            settings.shuffle_tags,
            settings.seed,
        )

    def fixed(self, image: int) -> str:
        """The image's caption as written: for held-out images, whose loss is compared
        between checkpoints and must not vary."""
        return captioned(self.prefix, self.captions[image])

    def at_step(self, image: int, step: int) -> str:
        """The image's caption at training step ``step``, dropped or shuffled as set."""
        caption = self.captions[image]
        if not caption.strip() or (not self.caption_dropout and not self.shuffle_tags):
            return captioned(self.prefix, caption)
        choices = random.Random(f"{self.seed}:{step}:{image}")
        if self.caption_dropout and choices.random() < self.caption_dropout:
            return self.prefix
        if self.shuffle_tags:
            tags = caption_tags(caption)
            choices.shuffle(tags)
            caption = ", ".join(tags)
        return captioned(self.prefix, caption)


class CaptionEncoder:
    """Texts to the UNet's conditioning, through the pipeline's text encoder(s).

    Frozen encoders give the same answer every time, so each text is encoded once
    (``cache``); while a token's embedding trains, every call encodes again, with
    gradients (a cached value would hold the embedding's old value).
    """

    def __init__(self, pipeline: BasePipeline, dtype: torch.dtype, *, cache: bool) -> None:
        self.pipeline = pipeline
        self.dtype = dtype
        self.cache = cache
        self._encoded: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}

    def _one(self, text: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        found = self._encoded.get(text)
        if found is not None:
            return found
        device = self.pipeline.unet.device
        # Uncached, the caller's mode holds: gradients in a step, none in validation.
        with torch.no_grad() if self.cache else contextlib.nullcontext():
            hidden_states, pooled = encode_caption(self.pipeline, text)
        encoded = (
            hidden_states.to(device, self.dtype),
            None if pooled is None else pooled.to(device, self.dtype),
        )
        if self.cache:
            self._encoded[text] = encoded
        return encoded

    def encode(self, texts: Sequence[str]) -> TextConditioning:
        """One row per text; a single row when all are the same (the UNet's arguments
        expand it to the batch, as when every image shared the trigger)."""
        if not texts:
            raise ValueError("no texts to encode")
        if len(set(texts)) == 1:
            hidden_states, pooled = self._one(texts[0])
            return TextConditioning(hidden_states, pooled)
        rows = [self._one(text) for text in texts]
        pooled_rows = [p for _, p in rows if p is not None]
        return TextConditioning(
            torch.cat([h for h, _ in rows]),
            torch.cat(pooled_rows) if len(pooled_rows) == len(rows) else None,
        )
