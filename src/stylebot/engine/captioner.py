"""Proposed captions for training images, from the operator's captioner (`captioner`
setting): a Florence-2 checkpoint (transformers' native `Florence2ForConditionalGeneration`,
no remote code) or a BLIP captioning one (`BlipForConditionalGeneration`), told apart
by the `model_type` of its config. A worker runs it as a queued job
(`stylebot.queue.caption_job`); what it writes is only proposed to the member.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from PIL import Image
from transformers import (
    AutoConfig,
    AutoProcessor,
    BlipForConditionalGeneration,
    Florence2ForConditionalGeneration,
)

log = logging.getLogger(__name__)

CaptionerFamily = Literal["florence2", "blip"]
# Florence-2's short caption task: a line a member can read and edit, where the detailed
# tasks write paragraphs longer than the text encoder reads.
FLORENCE_TASK = "<CAPTION>"
# Images per generate call: enough to fill a GPU with either family's base size.
CAPTION_BATCH = 8
# About the 77 tokens CLIP reads; the core cuts a caption to its character limit anyway.
MAX_NEW_TOKENS = 60


class UnknownCaptioner(ValueError):
    """The checkpoint is neither a Florence-2 nor a BLIP model."""

    user_message = "the configured captioner is not a Florence-2 or BLIP model"


def captioner_family(source: str) -> CaptionerFamily:
    """Which kind of captioner `source` (a folder or hub id) holds, from its config."""
    model_type = AutoConfig.from_pretrained(source).model_type
    if model_type == "florence2":
        return "florence2"
    if model_type == "blip":
        return "blip"
    raise UnknownCaptioner(f"{source} is a {model_type!r} model, not florence2 or blip")


class Captioner:
    """A loaded captioner on `device` in `dtype` (the worker's pipeline's)."""

    def __init__(
        self, source: str, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> None:
        self.source = source
        self.family = captioner_family(source)
        self.device = torch.device(device)
        # Half precision only where it runs fast: on a CPU it is slow, or unsupported.
        self.dtype = dtype if self.device.type != "cpu" else torch.float32
        model_class: Any = (
            Florence2ForConditionalGeneration
            if self.family == "florence2"
            else BlipForConditionalGeneration
        )
        self.model = model_class.from_pretrained(source, dtype=self.dtype).to(self.device).eval()
        self.processor = AutoProcessor.from_pretrained(source)

    @torch.no_grad()
    def caption(
        self, images: Sequence[Image.Image], should_stop: Callable[[], bool] | None = None
    ) -> list[str]:
        """A caption per image, in order (greedy decoding: the same images give the same
        captions); `should_stop` is read between batches."""
        captions: list[str] = []
        for start in range(0, len(images), CAPTION_BATCH):
            if should_stop is not None and should_stop():
                raise CaptioningStopped(f"stopped after {start} of {len(images)} images")
            batch = [image.convert("RGB") for image in images[start : start + CAPTION_BATCH]]
            captions.extend(self._batch(batch))
        return captions

    def _batch(self, images: list[Image.Image]) -> list[str]:
        if self.family == "florence2":
            inputs = self.processor(
                images=images, text=[FLORENCE_TASK] * len(images), return_tensors="pt"
            )
        else:
            inputs = self.processor(images=images, return_tensors="pt")
        inputs = {
            key: value.to(self.device, self.dtype if value.is_floating_point() else None)
            for key, value in inputs.items()
        }
        output = self.model.generate(
            **inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False, num_beams=1
        )
        texts: list[str] = self.processor.batch_decode(output, skip_special_tokens=True)
        return [" ".join(text.split()) for text in texts]


class CaptioningStopped(Exception):
    """Cancelled or interrupted between two batches."""


class CaptionerSlot:
    """The worker's captioner (`captioner` setting, "": none), loaded on the first job
    that asks for captions, on the device and in the dtype of the worker's pipeline."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._captioner: Captioner | None = None

    def get(self, device: torch.device, dtype: torch.dtype) -> Captioner:
        if not self.source:
            raise NoCaptioner("no captioner is configured on this worker")
        if self._captioner is None:
            self._captioner = Captioner(self.source, device, dtype)
            log.info("loaded the %s captioner", self._captioner.family)
        return self._captioner


class NoCaptioner(RuntimeError):
    """A caption job reached a worker without a captioner."""

    user_message = "the worker that took it has no captioner configured"
