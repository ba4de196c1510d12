"""A finished style measured with the operator's CLIP model (`clip_model` setting).

The worker draws a few neutral prompts twice with the same seeds, once with the
style (its trigger first, its LoRA on) and once with the base model alone, and
compares the CLIP image embeddings with those of the member's references
(`clip_metrics`). Any `CLIPModel` checkpoint works (a folder or a hub id with its
tokenizer and image processor), e.g. `openai/clip-vit-large-patch14`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizer

from stylebot.engine.clip_metrics import (
    clip_score,
    kernel_inception_distance,
    mean_cosine,
    style_fidelity,
)
from stylebot.engine.generation_request import GenerationRequest, LoraWeights
from stylebot.engine.generator import Generator
from stylebot.queue.payloads import StyleMetrics, TrainSettings

log = logging.getLogger(__name__)

# Subjects with no style of their own: what the style adds shows on them.
NEUTRAL_PROMPTS = (
    "a house by a lake",
    "a portrait of a person",
    "a bowl of fruit on a table",
    "a street in a city",
)
FIRST_SEED = 1000
# Denoising steps of each drawing: enough for the style to show, eight drawings per style.
METRIC_STEPS = 20

# One drawing: (prompt, seed, with the style?) -> the image.
Draw = Callable[[str, int, bool], Image.Image]


def _features(output: Any) -> torch.Tensor:
    """transformers 5 returns a model output with the projection in `pooler_output`;
    earlier versions the tensor itself."""
    features = getattr(output, "pooler_output", output)
    assert isinstance(features, torch.Tensor)
    return features


class ClipEmbedder:
    """A CLIP model's image and text embeddings (L2-normalised), on `device`."""

    def __init__(self, source: str, device: torch.device | str = "cpu") -> None:
        self.source = source
        self.device = torch.device(device)
        model: CLIPModel = CLIPModel.from_pretrained(source)
        self.model = model.to(self.device).eval()  # type: ignore[arg-type]  # transformers' stub
        self.tokenizer = CLIPTokenizer.from_pretrained(source)
        self.processor = CLIPImageProcessor.from_pretrained(source)

    @torch.no_grad()
    def images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        pixels = self.processor(images=[i.convert("RGB") for i in images], return_tensors="pt")
        values = pixels["pixel_values"].to(self.device, self.model.dtype)
        return F.normalize(_features(self.model.get_image_features(pixel_values=values)), dim=-1)

    @torch.no_grad()
    def texts(self, texts: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")
        tokens = {key: value.to(self.device) for key, value in tokens.items()}
        return F.normalize(_features(self.model.get_text_features(**tokens)), dim=-1)


def measure_style(
    draw: Draw,
    embedder: ClipEmbedder,
    references: Sequence[Image.Image],
    prompts: Sequence[str] = NEUTRAL_PROMPTS,
) -> StyleMetrics:
    """The style's metrics from drawings of `prompts` with and without it."""
    seeds = [FIRST_SEED + i for i in range(len(prompts))]
    styled = [draw(prompt, seed, True) for prompt, seed in zip(prompts, seeds, strict=True)]
    base = [draw(prompt, seed, False) for prompt, seed in zip(prompts, seeds, strict=True)]
    refs = embedder.images(references)
    styled_emb, base_emb = embedder.images(styled), embedder.images(base)
    texts = embedder.texts(prompts)
    return StyleMetrics(
        style_fidelity=style_fidelity(styled_emb, base_emb, refs),
        styled_similarity=mean_cosine(styled_emb, refs),
        base_similarity=mean_cosine(base_emb, refs),
        clip_score=clip_score(styled_emb, texts),
        base_clip_score=clip_score(base_emb, texts),
        kid=kernel_inception_distance(styled_emb, refs) if len(refs) >= 2 else None,
        samples=len(prompts),
        clip_model=embedder.source,
    )


class NoClipModel(RuntimeError):
    """A job that needs CLIP reached a worker without `clip_model`."""

    user_message = "the worker that took it has no CLIP model configured"


class StyleMeasurer:
    """The worker's measuring of finished styles with `clip_model` ("": none);
    the CLIP model loads on the first style it measures, on the pipeline's device."""

    def __init__(self, clip_model: str) -> None:
        self.clip_model = clip_model
        self._embedder: ClipEmbedder | None = None

    def embedder(self, device: torch.device) -> ClipEmbedder:
        """The CLIP model, loaded on `device` the first time it is needed."""
        if not self.clip_model:
            raise NoClipModel("no CLIP model is configured on this worker")
        if self._embedder is None:
            self._embedder = ClipEmbedder(self.clip_model, device)
        return self._embedder

    def measure(
        self,
        generator: Generator,
        weights: Path | None,
        trigger: str,
        settings: TrainSettings,
        references: Sequence[Image.Image],
    ) -> StyleMetrics | None:
        """The metrics of a run's LoRA file, or None: no CLIP model, no LoRA, a
        trained token (its prompts would need it), or a failure (logged: the style
        is fine without its metrics)."""
        if not self.clip_model or weights is None or settings.method != "lora":
            return None
        try:
            embedder = self.embedder(generator.pipeline.device)
            return measure_trained_style(
                generator, weights, trigger, settings.resolution, embedder, references
            )
        except Exception:
            log.exception("the style's CLIP metrics could not be computed; the style is ready")
            return None


def measure_trained_style(
    generator: Generator,
    weights: Path,
    trigger: str,
    size: int,
    embedder: ClipEmbedder,
    references: Sequence[Image.Image],
) -> StyleMetrics:
    """`measure_style` of the LoRA file `weights` (with `trigger` first in its prompts),
    drawn `size` pixels square by `generator`; the style leaves its memory after."""
    # A name of its own, so unloading it afterwards touches no cached style.
    copy = weights.with_name(f"metrics-{uuid.uuid4().hex}.safetensors")
    copy.write_bytes(weights.read_bytes())
    style = LoraWeights(copy.stem, copy)

    def draw(prompt: str, seed: int, styled: bool) -> Image.Image:
        request = GenerationRequest(
            prompt=f"{trigger}, {prompt}" if styled else prompt,
            seed=seed,
            steps=METRIC_STEPS,
            width=size,
            height=size,
        )
        return generator.generate(request, lora=style if styled else None)[0]

    try:
        return measure_style(draw, embedder, references)
    finally:
        generator.unload_files({copy.stem})
        copy.unlink(missing_ok=True)
