"""The captions a FLUX.1 or SD 3.5 run trains on, encoded before its first step.

The run's texts (the trigger, then each image's caption, dropped or shuffled per
step as trainer.captions decides) are known before it starts: the batch schedule
and the caption choices are seeded by the run's seed and the step. So each distinct
text is encoded once by T5 and CLIP up front, and the text encoders (T5-XXL alone
is 9 GB in bf16) leave the GPU for the whole run, as they did when every image
shared the trigger. The encodings wait in CPU memory and go to the device a batch
at a time: with tag shuffling a long run draws many distinct texts (FLUX.1's T5
sequence is 512 x 4096 values, 4 MB in bf16, per text).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from diffusers.pipelines.flux.pipeline_flux import FluxPipeline

from stylebot.engine.families import FlowPipeline
from stylebot.trainer.borrowed_unet import text_encoders


@dataclass(frozen=True)
class FlowConditioning:
    """Captions, encoded: T5's sequence and CLIP's pooled vector, a row per caption or
    one row for the whole batch (and Flux's text position ids, the same for all)."""

    hidden_states: torch.Tensor
    pooled: torch.Tensor
    text_ids: torch.Tensor | None

    def for_batch(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The sequence and pooled vector with `batch` rows (one row is repeated)."""
        if self.hidden_states.shape[0] == batch:
            return self.hidden_states, self.pooled
        return self.hidden_states.expand(batch, -1, -1), self.pooled.expand(batch, -1)


@torch.no_grad()
def encode_caption_once(pipeline: FlowPipeline, caption: str) -> FlowConditioning:
    device = pipeline.transformer.device
    if isinstance(pipeline, FluxPipeline):
        hidden, pooled, text_ids = pipeline.encode_prompt(caption, None, device=device)
        return FlowConditioning(hidden, pooled, text_ids)
    # The caption goes to all three encoders, as the pipeline sends a prompt.
    hidden, _, pooled, _ = pipeline.encode_prompt(
        caption, caption, caption, device=device, do_classifier_free_guidance=False
    )
    return FlowConditioning(hidden, pooled, None)


@contextmanager
def text_encoders_released(pipeline: FlowPipeline) -> Iterator[None]:
    """On a GPU the text encoders leave it for the run and come back after; on a CPU
    there is nothing to free."""
    encoders = text_encoders(pipeline)
    device = pipeline.transformer.device
    if device.type == "cpu":
        yield
        return
    for encoder in encoders:
        encoder.to("cpu")
    torch.cuda.empty_cache()
    try:
        yield
    finally:
        for encoder in encoders:
            encoder.to(device)


class EncodedCaptions:
    """Every text of a run, each encoded once (`encode_caption_once`) on creation."""

    def __init__(self, pipeline: FlowPipeline, texts: Iterable[str]) -> None:
        self._encoded: dict[str, FlowConditioning] = {}
        for text in texts:
            if text not in self._encoded:
                encoded = encode_caption_once(pipeline, text)
                self._encoded[text] = FlowConditioning(
                    encoded.hidden_states.to("cpu"),
                    encoded.pooled.to("cpu"),
                    None if encoded.text_ids is None else encoded.text_ids.to("cpu"),
                )
        self.device = pipeline.transformer.device

    def __len__(self) -> int:
        return len(self._encoded)

    def conditioning(self, texts: Sequence[str]) -> FlowConditioning:
        """The texts' conditioning on the transformer's device: a row per text, or one
        row when all are the same. A text not encoded up front is a bug: KeyError."""
        if not texts:
            raise ValueError("no texts to condition on")
        rows = [self._encoded[text] for text in dict.fromkeys(texts)]
        if len(rows) > 1:
            rows = [self._encoded[text] for text in texts]
        text_ids = rows[0].text_ids
        # The encoders' dtype, as the pipeline hands a prompt's encoding on.
        return FlowConditioning(
            torch.cat([row.hidden_states for row in rows]).to(self.device),
            torch.cat([row.pooled for row in rows]).to(self.device),
            None if text_ids is None else text_ids.to(self.device),
        )
